"""Celery signal handlers, connected by carttrack/celery.py in every process (web, worker, beat).

- The request ID travels with a task: published inside a request, the message gets a
  ``carttrack_request_id`` header; the worker sets it (and the task's name and ID) for the log
  lines of that task. A task without one (beat's) gets a new ID.
- Each task's last successful run is recorded in the cache (Redis): its duration and when it
  finished, read by the metrics at scrape time (``carttrack_task_last_duration_seconds``), so the
  sweep's and the snapshot refresh's durations are seen without a metrics store per process.
"""

from __future__ import annotations

import time

from celery import signals

from carttrack import logs

TASK_CACHE_PREFIX = "carttrack:task-last:"
_started: dict[str, tuple[float, object, object]] = {}


@signals.before_task_publish.connect
def _carry_request_id(headers=None, **kwargs):
    request_id = logs.request_id_current()
    if headers is not None and request_id and logs.TASK_HEADER not in headers:
        headers[logs.TASK_HEADER] = request_id


def _incoming_request_id(task) -> str | None:
    request = task.request
    value = getattr(request, logs.TASK_HEADER, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(logs.TASK_HEADER)
    return logs.request_id_sane(value)


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs):
    if task is None or task.request.is_eager:
        return  # in-process (no broker): the caller's request ID stays in force
    request_id = _incoming_request_id(task) or logs.request_id_new()
    _started[task_id] = (
        time.monotonic(),
        logs.request_id_var.set(request_id),
        logs.task_var.set((task.name, task_id)),
    )


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs):
    started = _started.pop(task_id, None)
    if started is None:
        return
    began, request_token, task_token = started
    if state == "SUCCESS":
        task_run_record(name=task.name, seconds=time.monotonic() - began)
    try:
        logs.task_var.reset(task_token)
        logs.request_id_var.reset(request_token)
    except ValueError:  # set in another context (a pool that switched threads): overwrite
        logs.task_var.set(None)
        logs.request_id_var.set(None)


def task_run_record(*, name: str, seconds: float, now: float | None = None) -> None:
    from django.core.cache import cache

    cache.set(
        TASK_CACHE_PREFIX + name,
        {"seconds": round(seconds, 6), "finished_at": now or time.time()},
        timeout=None,
    )


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _json_worker_logs(logger=None, **kwargs):
    """The worker's and beat's log lines as JSON with the request ID, like the web's."""
    from django.conf import settings

    if logger is None or getattr(settings, "LOG_FORMAT", "json") != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(logs.JsonFormatter(json_ensure_ascii=False))
        if not any(isinstance(f, logs.RequestIDFilter) for f in handler.filters):
            handler.addFilter(logs.RequestIDFilter())
