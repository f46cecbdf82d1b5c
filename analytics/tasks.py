"""Celery tasks for the dashboards and the stored analysis rows (schedules are in
carttrack/celery.py)."""

import logging

from celery import shared_task

from analytics import derived, services

logger = logging.getLogger(__name__)


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


@shared_task(ignore_result=True)
def derived_facts_verify_nightly() -> None:
    """The stored analysis rows against their rebuild from the raw records; every difference is
    logged as an error (a write that bypassed the write path) and fixed."""
    differences = derived.derived_facts_verify(fix=True)
    if differences:
        logger.error(
            "Derived facts: %d difference(s) in %d patient(s)' stored rows, rewritten; first: %s",
            len(differences),
            len({d.study_id for d in differences}),
            "; ".join(f"{d.study_id} {d.column}" for d in differences[:10]),
        )
