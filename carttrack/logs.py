"""Structured logs: one JSON object per line, with the request ID, and nothing clinical in them.

- ``RequestIDMiddleware`` (first in MIDDLEWARE) takes the request's ``X-Request-ID`` when it is
  sane (1-64 letters, digits, ``.``, ``_``, ``-``; a proxy or load balancer usually sets one),
  otherwise makes a new one; it is echoed in the response's ``X-Request-ID`` and written to
  every log line of the request, and one access line (method, path, view, status, duration) is
  logged when the response leaves. The path is logged without its query string: a search for a
  name or MRN never reaches the log.
- Celery tasks published during the request carry the ID in a message header
  (``carttrack_request_id``, see ``carttrack.celery_signals``) and the worker's log lines of the
  task carry it too; a task started by beat gets an ID of its own.
- ``JsonFormatter`` (python-json-logger) writes ``time``, ``level``, ``logger``, ``message``,
  ``request_id`` (and ``task``/``task_id`` in a worker) and the exception; it never writes a log
  record's ``extra`` objects (Django's ``request`` would print its query string) and it blanks
  the values PostgreSQL echoes in its error details (``DETAIL: Key (mrn)=(...)``).

What is never logged by design: a patient's MRN, name or lab values. Log messages name records
by their database ID or study ID (pseudonymous); tests/conftest.py captures every log line of the
test suite and fails the run if one holds a demo patient's MRN or name.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "carttrack_request_id", default=None
)
task_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "carttrack_task", default=None
)

HEADER = "X-Request-ID"
TASK_HEADER = "carttrack_request_id"
_SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

access_logger = logging.getLogger("carttrack.access")


def request_id_sane(value: str | None) -> str | None:
    """The incoming ID if it is safe to echo and log, else None (a new one is made)."""
    if value and _SANE.fullmatch(value):
        return value
    return None


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_current() -> str | None:
    return request_id_var.get()


class RequestIDFilter(logging.Filter):
    """Puts the current request ID (and task) on every record, for the formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        task = task_var.get()
        record.task, record.task_id = task if task else (None, None)
        return True


# PostgreSQL repeats the offending values in its errors: "DETAIL:  Key (mrn)=(SYN001) already
# exists.", "Failing row contains (...)". The key names stay; the values go.
_DETAIL_KEY = re.compile(r"(Key \([^)]*\))=\((?:[^()]|\([^)]*\))*\)")
_FAILING_ROW = re.compile(r"Failing row contains \(.*?\)\.?", re.DOTALL)


def redact(text: str) -> str:
    text = _DETAIL_KEY.sub(r"\1=(…)", text)
    return _FAILING_ROW.sub("Failing row contains (…).", text)


_FIELDS = ("request_id", "task", "task_id", "view")
_KEEP = {"time", "level", "logger", "message", "exc_info", "stack_info", *_FIELDS}


class JsonFormatter(_BaseJsonFormatter):
    """python-json-logger with a fixed set of fields and PostgreSQL's echoed values removed."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data, record, message_dict):
        # Only the standard fields and ours: Django's django.request passes the request object
        # as `extra`, whose repr holds the query string.
        super().add_fields(log_data, record, {})
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                log_data[name] = value
        for name in list(log_data):
            if name not in (
                "time",
                "level",
                "logger",
                "message",
                "exc_info",
                "stack_info",
                *_FIELDS,
            ):
                del log_data[name]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


class RequestIDMiddleware:
    """First in MIDDLEWARE: the request ID for logs and the response, and one access line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_sane(request.headers.get(HEADER)) or request_id_new()
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            match = getattr(request, "resolver_match", None)
            access_logger.info(
                "%s %s %s %.0f ms",
                request.method,
                request.path,
                response.status_code,
                (time.monotonic() - started) * 1000,
                extra={"view": match.view_name if match else None},
            )
            return response
        finally:
            request_id_var.reset(token)
