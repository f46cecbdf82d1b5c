"""Celery tasks: thin wrappers that call a service. Schedules are in carttrack/celery.py."""

from datetime import date, datetime

from celery import group, shared_task

from monitoring import escalation, notifications, sweep


@shared_task(ignore_result=True)
def send_pending_notifications() -> dict:
    return notifications.notifications_send_pending()


def sweep_dispatch(*, scope: str = sweep.ALL, as_of: date | None = None, size: int = sweep.CHUNK):
    """Queue the sweep as one task per chunk of patients, so every free worker (on any machine)
    takes a share. Returns the group's result (joinable when a result backend is configured)."""
    day = as_of.isoformat() if as_of else None
    chunks = sweep.sweep_chunks(scope=scope, as_of=as_of, size=size)
    return group(sweep_alerts_chunk.s(ids, day) for ids in chunks).apply_async()


@shared_task(ignore_result=True)
def sweep_alerts(scope: str = sweep.ALL) -> int:
    """Hourly: scope "time_sensitive"; nightly: "all". Returns the number of chunks queued."""
    return len(sweep_dispatch(scope=scope).children or [])


@shared_task
def sweep_alerts_chunk(patient_ids: list[int], as_of: str | None = None) -> dict:
    return sweep.sweep_patients(patient_ids, as_of=date.fromisoformat(as_of) if as_of else None)


@shared_task(ignore_result=True)
def retry_undelivered_notifications() -> int:
    return notifications.notifications_retry_failed()


@shared_task(ignore_result=True)
def escalate_alerts(now: str | None = None) -> dict:
    """Beat, every ALERT_ESCALATION_SWEEP_SECONDS: high alerts nobody acknowledged. `now` (ISO
    8601) is for tests that run the real worker on a fixed clock."""
    return escalation.alerts_escalate(now=datetime.fromisoformat(now) if now else None)
