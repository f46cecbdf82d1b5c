"""The Celery app. Every periodic task is declared here, in one place."""

import os

from celery import Celery
from celery.schedules import crontab

from carttrack.env import env_int

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")

app = Celery("carttrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Time-based rules (B-cell count due, aplasia coming due): only the patients the clock can
    # change, hourly; everyone nightly, the safety net for every other rule. Each run is queued
    # as one task per chunk of patients, so more workers finish it sooner.
    "sweep-alerts-hourly": {
        "task": "monitoring.tasks.sweep_alerts",
        "schedule": crontab(minute=5),
        "args": ("time_sensitive",),
    },
    "sweep-alerts-nightly": {
        "task": "monitoring.tasks.sweep_alerts",
        "schedule": crontab(hour=1, minute=35),
        "args": ("all",),
    },
    # Notifications that could not be enqueued when their alert was raised (Redis down).
    "send-pending-notifications": {
        "task": "monitoring.tasks.send_pending_notifications",
        "schedule": float(env_int("NOTIFICATION_SWEEP_SECONDS", 60)),
    },
    # High alerts nobody acknowledged: to the center's other clinicians, then its leads.
    "escalate-alerts": {
        "task": "monitoring.tasks.escalate_alerts",
        "schedule": float(env_int("ALERT_ESCALATION_SWEEP_SECONDS", 300)),
    },
    # Undeliverable notifications (5 failed attempts) get a fresh set of attempts: the mail
    # server may be back, the recipient may have an address now.
    "retry-undelivered-notifications": {
        "task": "monitoring.tasks.retry_undelivered_notifications",
        "schedule": float(env_int("NOTIFICATION_RETRY_SECONDS", 3600)),
    },
    # Dashboards: recompute when the data changed since the last snapshot, and nightly.
    "refresh-dashboard-if-changed": {
        "task": "analytics.tasks.refresh_dashboard_if_changed",
        "schedule": 300.0,
    },
    # A refresh whose worker died is failed within minutes (with the reason), never left running.
    "sweep-refresh-runs": {"task": "analytics.tasks.sweep_refresh_runs", "schedule": 60.0},
    # An import job whose worker died (nothing of it saved) is queued again, or failed with the
    # reason after IMPORT_JOB_RETRIES re-queues, never left running.
    "sweep-import-jobs": {"task": "imports.tasks.sweep_import_jobs", "schedule": 60.0},
    # Idempotency keys older than IDEMPOTENCY_KEY_DAYS are deleted (presented, they are new).
    "purge-idempotency-keys": {
        "task": "imports.tasks.purge_idempotency_keys",
        "schedule": crontab(hour=3, minute=15),
    },
    "refresh-dashboard-nightly": {
        "task": "analytics.tasks.refresh_dashboard_nightly",
        "schedule": crontab(hour=2, minute=30),
    },
    # The stored analysis rows (kept current on write) rebuilt from the raw records and compared;
    # a difference is logged and fixed. Before the nightly snapshots, after the full sweep.
    "derived-facts-verify-nightly": {
        "task": "analytics.tasks.derived_facts_verify_nightly",
        "schedule": crontab(hour=2, minute=5),
    },
}

# Request IDs carried into tasks, task durations recorded (carttrack/celery_signals.py); beat's
# own heartbeat, which /health/ready checks is not older than two periods.
from carttrack import celery_signals  # noqa: E402,F401

app.conf.beat_schedule["beat-heartbeat"] = {
    "task": "carttrack.tasks.beat_heartbeat",
    "schedule": float(env_int("HEALTH_BEAT_SECONDS", 60)),
}
