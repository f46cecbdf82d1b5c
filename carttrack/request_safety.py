"""Requests that could only end in a 500 are refused with a message first (issue 21).

* ``NulByteMiddleware``: a NUL byte in the path or the query string (``%00``) is a 400 that
  says so: PostgreSQL text cannot hold one, so a lookup by it raised. Form fields refuse NUL
  already (Django's ``ProhibitNullCharactersValidator`` on every CharField).
* ``SafeJSONParser``: the API's JSON parser refuses a body nested deeper than
  ``JSON_MAX_DEPTH`` (before ``json.loads`` would recurse into a RecursionError) and one that
  carries a NUL (raw or as ``\\u0000``), each with a 400 that names the problem.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL_MESSAGE = _("The address contains a NUL byte (%00); remove it and try again.")

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_ESCAPED_NUL = re.compile(rb"\\u0000", re.IGNORECASE)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without
    parsing it: linear, no recursion."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before parsing, or None."""
    limit = settings.JSON_MAX_DEPTH
    if json_depth(body) > limit:
        return gettext(
            "The JSON is nested more than %(limit)s levels deep; send a flatter document."
        ) % {"limit": limit}
    if b"\x00" in body or any(
        # \u0000 inside a string: an odd number of backslashes before "u0000" is an escape.
        (len(m.string[: m.start()]) - len(m.string[: m.start()].rstrip(b"\\"))) % 2 == 0
        for m in _ESCAPED_NUL.finditer(body)
    ):
        return gettext("The JSON contains a NUL character (\\u0000); remove it and send it again.")
    return None


class SafeJSONParser(JSONParser):
    """JSONParser that refuses too-deep nesting and NUL characters with a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        problem = json_problem(body)
        if problem:
            raise ParseError(problem)
        import io

        return super().parse(io.BytesIO(body), media_type, parser_context)


FHIR_PREFIX = "/api/v1/fhir/"


def _has_nul(text: str) -> bool:
    return "\x00" in text or b"\x00" in unquote_to_bytes(text)


class NulByteMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        errors = {}
        if _has_nul(request.META.get("PATH_INFO", "")):
            errors["path"] = [str(NUL_MESSAGE)]
        if _has_nul(request.META.get("QUERY_STRING", "")):
            named = [k for k, values in request.GET.lists() if any("\x00" in v for v in values)]
            for key in named or ["query"]:
                errors[key.replace("\x00", "")] = [f"{key.replace(chr(0), '')}: {NUL_MESSAGE}"]
        if not errors:
            return self.get_response(request)
        if request.path.startswith(FHIR_PREFIX):  # FHIR speaks OperationOutcome
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invalid",
                        "expression": [where],
                        "diagnostics": m,
                    }
                    for where, messages in errors.items()
                    for m in messages
                ],
            }
            return JsonResponse(outcome, status=400, content_type="application/fhir+json")
        if request.path.startswith("/api/"):  # the API's one error shape
            return JsonResponse({"detail": str(NUL_MESSAGE), "errors": errors}, status=400)
        return HttpResponse(str(NUL_MESSAGE), status=400, content_type="text/plain; charset=utf-8")
