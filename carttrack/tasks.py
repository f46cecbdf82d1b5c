"""Project-wide Celery tasks (schedules in carttrack/celery.py)."""

from celery import shared_task

from carttrack import health


@shared_task(ignore_result=True)
def beat_heartbeat() -> float:
    """Sent by beat every HEALTH_BEAT_SECONDS and run by a worker: the time it ran is what
    /health/ready compares with the period (beat or every worker stopped: the stamp ages)."""
    return health.beat_heartbeat_record()
