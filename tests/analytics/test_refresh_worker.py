"""The "Refresh now" button with a real Celery worker on real Redis.

The worker runs in a subprocess on the test database, so the data must be committed
(transactional_db).
"""

from __future__ import annotations

import re

import pytest

from analytics import services
from analytics.dataset import CohortFilter
from analytics.models import DONE, FAILED, DashboardSnapshot, RefreshRun
from analytics.tasks import refresh_dashboard_if_changed
from carttrack.celery import app
from tests.analytics.test_dataset import infused_patient
from tests.analytics.test_snapshot import small_study

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fresh_broker_pools():
    """Start and end with no cached broker connections in this process.

    kombu keeps one pool per broker URL in a process-wide registry, and a pool closed with
    force_close_all() stays there closed ("Acquire on closed pool" on the next publish). Request
    this before celery_worker_factory so that it is torn down after the worker has stopped.
    """
    from kombu import pools

    def reset():
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    yield
    reset()


def _succeeded(log: str, task: str) -> int:
    """How many runs of ``task`` the worker logged as succeeded (the banner also names it)."""
    return len(re.findall(rf"Task {re.escape(task)}\[[0-9a-f-]+\] succeeded", log))


def test_refresh_button_is_computed_by_the_worker(
    fresh_broker_pools, celery_worker_factory, wait_for, clinician_client, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    small_study()
    worker = celery_worker_factory()

    response = clinician_client.post("/dashboard/refresh/")
    assert response.status_code == 302
    run = RefreshRun.objects.get()

    def finished():
        run.refresh_from_db()
        return run.status in (DONE, FAILED)

    wait_for(finished, timeout=60, what="the worker to finish the refresh run")
    assert (run.status, run.progress, run.error) == (DONE, 100, ""), (run.error, worker.log())
    assert run.snapshot.n_patients == 12
    assert services.latest_snapshot(CohortFilter()) == run.snapshot
    assert _succeeded(worker.log(), "analytics.tasks.refresh_dashboard") == 1
    status = clinician_client.get(f"/dashboard/runs/{run.pk}/").json()
    assert (status["status"], status["snapshot"]) == (DONE, run.snapshot.pk)

    # Beat's periodic check, sent to the same worker: nothing changed, so nothing is computed...
    refresh_dashboard_if_changed.delay()
    wait_for(
        lambda: _succeeded(worker.log(), "analytics.tasks.refresh_dashboard_if_changed") == 1,
        timeout=30,
        what="the periodic check to run",
    )
    assert DashboardSnapshot.objects.count() == 1
    # ...and after a change it computes the whole-cohort snapshot again.
    infused_patient(responses=((28, "NR"),), death=70)
    refresh_dashboard_if_changed.delay()
    wait_for(lambda: DashboardSnapshot.objects.count() == 2, timeout=30, what="a new snapshot")
    assert services.latest_snapshot(CohortFilter()).n_patients == 13
