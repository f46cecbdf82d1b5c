"""Prometheus metrics at /metrics, for the operations team's Prometheus only.

Answered to ``Authorization: Bearer <METRICS_TOKEN>`` or to a client address in
METRICS_ALLOWED_IPS (the address as carttrack.security.client_address sees it, behind
TRUSTED_PROXY_COUNT proxies); anyone else gets a 404, as if there were nothing here.

Two kinds of metrics (README "Operations" lists each with its meaning):

- **requests** by view, method and status (a counter and a latency histogram) kept by
  ``RequestMetricsMiddleware`` in each process; under gunicorn set PROMETHEUS_MULTIPROC_DIR to an
  empty folder (emptied at every start) and the scrape adds up every worker process's files
  (prometheus_client's multiprocess mode);
- **the product's own** (alerts, notifications, import jobs, the lab feed, snapshots, sweeps,
  beat, workers) computed from PostgreSQL and Redis at scrape time by ``ProductCollector``, so
  every process answers the same numbers and nothing is kept in memory. Each is a few indexed
  aggregate queries: a scrape costs milliseconds.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from carttrack.security import client_address

REQUESTS_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "carttrack_http_requests",
    "HTTP requests answered, by view (URL name), method and status code.",
    ["view", "method", "status"],
    registry=REQUESTS_REGISTRY,
)
LATENCY = Histogram(
    "carttrack_http_request_duration_seconds",
    "Time to answer a request, by view.",
    ["view"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REQUESTS_REGISTRY,
)
WORKER_PING_SECONDS = 0.5  # a scrape waits this long for workers to answer
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The URL name, never the path: a path holds study IDs and would make a series each.
        view = (match.view_name or "unnamed") if match else "unresolved"
        method = request.method if request.method in _METHODS else "other"
        REQUESTS.labels(view, method, str(response.status_code)).inc()
        LATENCY.labels(view).observe(time.monotonic() - started)
        return response


def _age(now: float, moment) -> float | None:
    return None if moment is None else max(0.0, now - moment.timestamp())


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


def _by(name, documentation, labels, rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, count in rows:
        family.add_metric([str(v) for v in values], count)
    return family


class ProductCollector:
    """CARTtrack's own state, read from the database (and Redis) at every scrape."""

    def collect(self):
        from django.db.models import Count, Max, Min

        from analytics.models import DashboardSnapshot
        from imports.models import QUEUED, HeldResult, HL7Message, ImportJob
        from monitoring.models import Alert, Notification
        from patients.models import LabResult

        now = time.time()
        alerts = Alert.objects.filter(historical=False)
        yield _by(
            "carttrack_alerts_raised",
            "Alerts raised (not imported history), by rule and severity, whatever became of them.",
            ["rule", "severity"],
            alerts.values_list("rule", "severity").annotate(n=Count("id")).order_by(),
        )
        yield _by(
            "carttrack_alerts_active",
            "Alerts still to act on (open or acknowledged), by rule and severity.",
            ["rule", "severity"],
            Alert.objects.active_work()
            .values_list("rule", "severity")
            .annotate(n=Count("id"))
            .order_by(),
        )
        yield _by(
            "carttrack_notifications",
            "Notifications in the outbox by status (pending, sending, sent, failed = "
            "undeliverable after its attempts).",
            ["status"],
            Notification.objects.values_list("status").annotate(n=Count("id")).order_by(),
        )
        yield _by(
            "carttrack_notifications_escalated",
            "Escalation notifications (a high alert not acknowledged in time, sent again) by "
            "step (1: the center's other clinicians, 2: the center's leads) and status.",
            ["step", "status"],
            Notification.objects.filter(escalation_step__gt=0)
            .values_list("escalation_step", "status")
            .annotate(n=Count("id"))
            .order_by(),
        )
        oldest = Notification.objects.filter(status__in=["pending", "sending"]).aggregate(
            m=Min("created_at")
        )["m"]
        yield _gauge(
            "carttrack_notification_oldest_unsent_age_seconds",
            "Age of the oldest notification not yet sent (absent: none waiting).",
            _age(now, oldest),
        )
        yield _by(
            "carttrack_import_jobs",
            "Background import jobs by status (queued, running, done, failed).",
            ["status"],
            ImportJob.objects.values_list("status").annotate(n=Count("id")).order_by(),
        )
        oldest_job = ImportJob.objects.filter(status=QUEUED).aggregate(m=Min("created_at"))["m"]
        yield _gauge(
            "carttrack_import_job_oldest_queued_age_seconds",
            "Age of the oldest import job no worker has taken (absent: none queued).",
            _age(now, oldest_job),
        )
        yield _by(
            "carttrack_hl7_messages",
            "HL7 v2 messages received over MLLP, by the ACK code sent (AA, AE, AR; empty: "
            "stored, not yet answered).",
            ["ack_code"],
            HL7Message.objects.values_list("ack_code").annotate(n=Count("id")).order_by(),
        )
        newest_message = HL7Message.objects.aggregate(m=Max("received_at"))["m"]
        yield _gauge(
            "carttrack_hl7_newest_message_age_seconds",
            "Seconds since the newest HL7 message arrived (absent: none yet): the feed's lag.",
            _age(now, newest_message),
        )
        yield _by(
            "carttrack_held_results",
            "Results a feed sent that could not be placed (unknown patient, unmapped code or "
            "unit), by state (held, imported, dismissed) and feed.",
            ["state", "source"],
            HeldResult.objects.values_list("state", "source").annotate(n=Count("id")).order_by(),
        )
        newest_result = LabResult.objects.order_by("-pk").values_list("entered_at", flat=True)[:1]
        yield _gauge(
            "carttrack_lab_result_newest_age_seconds",
            "Seconds since the newest lab result was stored (any source: forms, API, FHIR, "
            "spreadsheets): the lab feed's silence.",
            _age(now, newest_result[0]) if newest_result else None,
        )
        snapshot = (
            DashboardSnapshot.objects.order_by("-computed_at", "-pk")
            .values("computed_at", "duration_ms")
            .first()
        )
        yield _gauge(
            "carttrack_snapshot_newest_age_seconds",
            "Seconds since the newest dashboard snapshot was computed.",
            _age(now, snapshot["computed_at"]) if snapshot else None,
        )
        yield _gauge(
            "carttrack_snapshot_duration_seconds",
            "How long the newest dashboard snapshot took to compute.",
            snapshot["duration_ms"] / 1000 if snapshot else None,
        )
        yield _gauge(
            "carttrack_snapshots",
            "Dashboard snapshots stored.",
            DashboardSnapshot.objects.count(),
        )
        yield from self._tasks(now)

    def _tasks(self, now: float):
        from django.core.cache import cache

        from carttrack import health
        from carttrack.celery import app
        from carttrack.celery_signals import TASK_CACHE_PREFIX

        names = sorted(name for name in app.tasks if not name.startswith("celery."))
        try:
            stored = cache.get_many([TASK_CACHE_PREFIX + name for name in names])
            beat_age = health.beat_heartbeat_age(now=now)
        except Exception:  # Redis down: the task metrics are absent, the rest still answers
            stored, beat_age = {}, None
        duration = GaugeMetricFamily(
            "carttrack_task_last_duration_seconds",
            "Duration of each Celery task's last successful run (the sweep: "
            "monitoring.tasks.sweep_alerts_chunk; a snapshot: analytics.tasks.*).",
            labels=["task"],
        )
        age = GaugeMetricFamily(
            "carttrack_task_last_success_age_seconds",
            "Seconds since each Celery task last finished successfully.",
            labels=["task"],
        )
        for key, entry in stored.items():
            name = key.removeprefix(TASK_CACHE_PREFIX)
            duration.add_metric([name], entry["seconds"])
            age.add_metric([name], max(0.0, now - entry["finished_at"]))
        yield duration
        yield age
        yield _gauge(
            "carttrack_beat_heartbeat_age_seconds",
            "Seconds since beat's heartbeat task last ran on a worker (absent: never).",
            beat_age,
        )
        if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
            try:
                workers = len(app.control.ping(timeout=WORKER_PING_SECONDS))
            except Exception:
                workers = 0
            yield _gauge(
                "carttrack_celery_workers",
                "Celery workers that answered a ping during this scrape.",
                workers,
            )


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode()):
            return True
    address = client_address(request)
    if not address or not settings.METRICS_ALLOWED_IPS:
        return False
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(
        client in ipaddress.ip_network(allowed, strict=False)
        for allowed in settings.METRICS_ALLOWED_IPS
    )


def _request_registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REQUESTS_REGISTRY


@login_not_required
@never_cache
def metrics(request):
    if not _allowed(request):
        raise Http404
    product = CollectorRegistry(auto_describe=False)
    product.register(ProductCollector())
    body = generate_latest(_request_registry()) + generate_latest(product)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
