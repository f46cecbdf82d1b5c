"""Celery tasks: thin wrappers that call a service. Schedules are in carttrack/celery.py."""

from celery import shared_task

from monitoring import notifications, services


@shared_task(ignore_result=True)
def send_pending_notifications() -> dict:
    return notifications.notifications_send_pending()


@shared_task(ignore_result=True)
def sweep_alerts() -> dict:
    counts = services.sweep()
    notifications.notifications_send_pending()
    return counts


@shared_task(ignore_result=True)
def retry_undelivered_notifications() -> int:
    return notifications.notifications_retry_failed()
