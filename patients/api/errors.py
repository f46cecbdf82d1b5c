"""Every API error is JSON with one shape, whatever its status (400, 401, 403, 404, 405, 413, 500):

    {"detail": "one sentence for a person", "errors": {"samples[0].values[1].value": ["..."]}}

`errors` names each problem by its place in the request (present for 400s). DRF's exceptions go
through `exception_handler` (settings REST_FRAMEWORK["EXCEPTION_HANDLER"]); what Django answers
before or outside DRF (an unknown /api/ path, a body over the size limit, a crash) goes through
the `json_or_html_*` handlers in carttrack/urls.py, which answer JSON for /api/ paths.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

MESSAGES = {
    400: _("The request was refused: see errors for each problem."),
    401: _("Sign in or send an API token (Authorization: Token ...)."),
    403: _("You may not do this."),
    404: _("Not found."),
    405: _("This method is not allowed here."),
    413: _("The request is too large: send fewer samples per request."),
    500: _("The server failed to answer; nothing was saved. The error was logged."),
}


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (documented in the OpenAPI schema for each status)."""

    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


ERROR_RESPONSES = {code: ErrorSerializer for code in (400, 401, 403, 404, 405, 413, 500)}


def flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as {"samples[0].values[1].value": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                path = prefix or "request"
            elif isinstance(key, int) or str(key).isdigit():
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub, messages in flatten(value, path).items():
                out.setdefault(sub, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.setdefault(prefix or "request", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    for sub, messages in flatten(item, f"{prefix}[{index}]").items():
                        out.setdefault(sub, []).extend(messages)
    else:
        out.setdefault(prefix or "request", []).append(str(detail))
    return out


def error_body(code: int, detail: str | None = None, errors: dict | None = None) -> dict:
    body: dict = {"detail": detail or str(MESSAGES.get(code, _("The request failed.")))}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc, context):
    """DRF's handler, with the one error shape; unexpected exceptions become a JSON 500."""
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(413), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, (OperationalError, InterfaceError)):  # the database cannot be reached
        return _database_unavailable(Response)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"request": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("API error", exc_info=exc)
        return Response(error_body(500), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(400, errors=flatten(exc.detail))
    elif isinstance(exc, exceptions.ParseError):  # the body itself: say what to fix, by place
        detail = str(exc.detail)
        response.data = error_body(400, detail, errors={"request": [detail]})
    else:
        detail = exc.detail if isinstance(getattr(exc, "detail", None), str) else None
        response.data = error_body(response.status_code, str(detail) if detail else None)
    return response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def json_or_html_400(request, exception=None):
    from django.views import defaults

    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body(413), status=413)
        return JsonResponse(error_body(400, gettext("The request could not be read.")), status=400)
    return defaults.bad_request(request, exception)


def json_or_html_403(request, exception=None):
    from django.views import defaults

    if _is_api(request):
        return JsonResponse(error_body(403), status=403)
    return defaults.permission_denied(request, exception)


def json_or_html_404(request, exception=None):
    from django.views import defaults

    if _is_api(request):
        return JsonResponse(error_body(404), status=404)
    return defaults.page_not_found(request, exception)


def _database_unavailable(kind):
    logger.error("Database unavailable during an API request")
    response = kind(
        error_body(503, gettext("The database cannot be reached just now; retry in 30 seconds.")),
        status=503,
    )
    response["Retry-After"] = "30"
    return response


def json_or_html_500(request):
    import sys

    from carttrack.security import server_error  # a 503 page when the database is unreachable

    if _is_api(request):
        if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
            return _database_unavailable(JsonResponse)
        return JsonResponse(error_body(500), status=500)
    return server_error(request)
