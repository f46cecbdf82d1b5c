"""Celery tasks for the dashboards (schedules are in carttrack/celery.py)."""

from celery import shared_task

from analytics import services


@shared_task(ignore_result=True)
def refresh_dashboard(run_id: int) -> None:
    services.refresh_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def refresh_dashboard_if_changed() -> None:
    services.refresh_if_changed()


@shared_task(ignore_result=True)
def refresh_dashboard_nightly() -> None:
    services.snapshot_compute(options={})
