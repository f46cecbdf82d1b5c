"""Health endpoints for load balancers, orchestrators and the operations team.

- ``/health/live``: the process answers (no dependency is touched): restart the container when
  this fails.
- ``/health/ready``: every dependency the application needs to do its work answers; take the
  instance out of rotation (and page someone) while this is 503. Checked, with
  django-health-check's runner (each check in parallel, with a timeout):

  ========== ================================================================================
  database   PostgreSQL answers ``SELECT 1`` (a new connection)
  redis      Redis answers PING (only with REDIS_URL)
  worker     a Celery worker answers a ping and consumes the task queue (only with REDIS_URL)
  beat       the beat heartbeat task ran less than 2 × HEALTH_BEAT_SECONDS ago (with REDIS_URL)
  mllp       a TCP connection to HL7_LISTEN_HOST:HL7_LISTEN_PORT opens (only when the port is
             set: the HL7 v2 listener's settings)
  disk       the folder uploads are spooled to has at least HEALTH_DISK_MIN_FREE_MB free
  ========== ================================================================================

The answer is JSON, ``{"status": "ok"|"unavailable", "checks": {"database": {"status": "ok",
"seconds": 0.002}, "redis": {"status": "unavailable", "error": "..."}}}``: check names, timings
and the library's short error texts only: no host names, URLs, credentials or patient data.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

BEAT_KEY = "carttrack:beat-heartbeat"


def beat_heartbeat_record(*, now: float | None = None) -> float:
    stamp = time.time() if now is None else now
    cache.set(BEAT_KEY, stamp, timeout=None)
    return stamp


def beat_heartbeat_age(*, now: float | None = None) -> float | None:
    stamp = cache.get(BEAT_KEY)
    if stamp is None:
        return None
    return (time.time() if now is None else now) - float(stamp)


@dataclasses.dataclass
class WorkerPing(Ping):
    """django-health-check's Celery ping (a worker answers, and one consumes the task queue);
    ``reply_seconds`` is how long each of the two broadcasts waits for answers, ``timeout`` the
    whole check's budget. A broker that cannot be reached is "unavailable" (the library would
    report kombu's error as an unknown exception)."""

    reply_seconds: float = dataclasses.field(default=1.0, repr=False)

    def run(self):
        try:
            replies = self.app.control.ping(timeout=self.reply_seconds)
        except Exception as error:
            raise ServiceUnavailable("Celery broker unreachable") from error
        if not replies:
            raise ServiceUnavailable("No Celery worker answered")
        workers = list(self.active_workers(replies))
        try:
            self.check_active_queues(*workers)
        except ServiceUnavailable:
            raise
        except Exception as error:
            raise ServiceUnavailable("Celery broker unreachable") from error


@dataclasses.dataclass
class BeatHeartbeat(HealthCheck):
    """Beat sends ``carttrack.tasks.beat_heartbeat`` every HEALTH_BEAT_SECONDS and a worker
    stamps the time in Redis: older than two periods, beat (or every worker) has stopped."""

    def run(self):
        try:
            age = beat_heartbeat_age()
        except Exception as error:
            raise ServiceUnavailable("Beat heartbeat unreadable") from error
        limit = 2 * settings.HEALTH_BEAT_SECONDS
        if age is None:
            raise ServiceUnavailable("Beat has not run yet")
        if age > limit:
            raise ServiceUnavailable(f"Beat last ran {age:.0f} s ago (limit {limit} s)")


@dataclasses.dataclass
class TcpListener(HealthCheck):
    """The MLLP (HL7 v2) listener accepts a TCP connection."""

    host: str = dataclasses.field(default="127.0.0.1", repr=False)
    port: int = dataclasses.field(default=0, repr=False)

    def run(self):
        try:
            socket.create_connection((self.host, self.port), timeout=2).close()
        except OSError as error:
            raise ServiceUnavailable("MLLP listener not accepting connections") from error


@dataclasses.dataclass
class DiskFree(HealthCheck):
    """The folder uploads are spooled to keeps at least ``min_free_mb`` free."""

    path: str = dataclasses.field(default_factory=tempfile.gettempdir, repr=False)
    min_free_mb: int = dataclasses.field(default=500, repr=False)

    def run(self):
        try:
            free_mb = shutil.disk_usage(self.path).free / 1024 / 1024
        except OSError as error:
            raise ServiceUnavailable("Upload folder not readable") from error
        if free_mb < self.min_free_mb:
            raise ServiceUnavailable(
                f"{free_mb:.0f} MB free for uploads (at least {self.min_free_mb} MB needed)"
            )


def _redis_client():
    from redis.asyncio import Redis as RedisClient

    return RedisClient.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


def readiness_checks() -> list[tuple[str, HealthCheck]]:
    """(name, check) pairs, read from the settings at every request."""
    checks: list[tuple[str, HealthCheck]] = [("database", Database())]
    if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        from carttrack.celery import app

        checks += [
            ("redis", Redis(client_factory=_redis_client)),
            (
                "worker",
                WorkerPing(
                    app=app,
                    reply_seconds=settings.HEALTH_WORKER_REPLY_SECONDS,
                    timeout=_seconds(2 * settings.HEALTH_WORKER_REPLY_SECONDS + 2),
                ),
            ),
            ("beat", BeatHeartbeat()),
        ]
    elif settings.REDIS_URL:
        checks.append(("redis", Redis(client_factory=_redis_client)))
    port = getattr(settings, "HL7_LISTEN_PORT", None)
    if port:
        host = getattr(settings, "HL7_LISTEN_HOST", None) or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"  # listening on every address: this machine's is one of them
        checks.append(("mllp", TcpListener(host=host, port=int(port))))
    checks.append(
        (
            "disk",
            DiskFree(
                path=settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir(),
                min_free_mb=settings.HEALTH_DISK_MIN_FREE_MB,
            ),
        )
    )
    return checks


def _seconds(value: float):
    from datetime import timedelta

    return timedelta(seconds=value)


class ReadinessView(HealthCheckView):
    """django-health-check's runner with our JSON: 503 when any check fails."""

    def get_checks(self):
        self.named = readiness_checks()
        return [check for _name, check in self.named]

    async def get(self, request, *args, **kwargs):
        import asyncio

        with self.get_executor() as executor:
            results = await asyncio.gather(
                *(check.get_result(executor) for check in self.get_checks())
            )
        checks = {}
        for (name, _check), result in zip(self.named, results, strict=True):
            entry = {"status": "ok" if result.error is None else "unavailable"}
            entry["seconds"] = round(result.time_taken, 4)
            if result.error is not None:
                entry["error"] = str(result.error)
            checks[name] = entry
        failed = any(result.error is not None for result in results)
        return JsonResponse(
            {"status": "unavailable" if failed else "ok", "checks": checks},
            status=503 if failed else 200,
        )


@login_not_required
@never_cache
def live(request):
    return JsonResponse({"status": "ok"})


ready = login_not_required(ReadinessView.as_view())
