"""Celery tasks for the dashboards (schedules are in carttrack/celery.py)."""

from celery import shared_task

from analytics import services


# Acknowledged only when done, and given back to the queue if the worker dies, so a refresh is
# never lost; a redelivered run that the sweep already failed is skipped.
@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def refresh_dashboard(run_id: int) -> None:
    services.refresh_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def sweep_refresh_runs() -> None:
    services.refresh_runs_sweep()


@shared_task(ignore_result=True)
def refresh_dashboard_if_changed() -> None:
    services.refresh_if_changed()


@shared_task(ignore_result=True)
def refresh_dashboard_nightly() -> None:
    # One task per cohort (registry, each center, recently opened filters): spread over workers.
    services.snapshots_refresh_all()
