"""Project-wide Celery tasks (schedules in carttrack/celery.py)."""

import logging

from celery import shared_task

from carttrack import health

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def beat_heartbeat() -> float:
    """Sent by beat every HEALTH_BEAT_SECONDS and run by a worker: the time it ran is what
    /health/ready compares with the period (beat or every worker stopped: the stamp ages)."""
    stamp = health.beat_heartbeat_record()
    logger.info("beat heartbeat recorded")
    return stamp
