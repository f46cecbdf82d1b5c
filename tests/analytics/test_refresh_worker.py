"""The "Refresh now" button with a real Celery worker on real Redis.

The worker runs in a subprocess on the test database, so the data must be committed
(transactional_db).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from analytics import services
from analytics.dataset import CohortFilter
from analytics.models import DONE, FAILED, DashboardSnapshot, RefreshRun
from analytics.tasks import refresh_dashboard_if_changed
from carttrack.celery import app
from tests.analytics.test_dataset import infused_patient
from tests.analytics.test_snapshot import small_study
from tests.conftest import worker_lost

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


def test_a_worker_killed_mid_refresh_is_failed_by_the_sweep_and_the_next_run_completes(
    fresh_broker_pools, celery_worker_factory, wait_for, clinician_client, settings
):
    """Issue 11: SIGKILL during "Refresh now" left the run "running" for an hour. The worker is
    held at the last step by a table lock, killed, and the sweep fails the run with the reason;
    the page then shows no running run and the previous snapshot; the next run completes.
    (SHARE mode blocks only inserts into the snapshot table, not reads.)"""
    import psycopg
    from django.db import connection
    from django.utils import timezone

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REFRESH_STALE_SECONDS = 4
    small_study()
    previous = services.snapshot_compute(options={})
    fast_heartbeat = {"REFRESH_HEARTBEAT_SECONDS": "1", "CELERY_VISIBILITY_TIMEOUT": "5"}
    worker = celery_worker_factory(extra_env=fast_heartbeat)

    db = connection.settings_dict
    blocker = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    try:
        blocker.execute("LOCK TABLE analytics_dashboardsnapshot IN SHARE MODE")
        assert clinician_client.post("/dashboard/refresh/").status_code == 302
        run = RefreshRun.objects.get()

        def saving():
            run.refresh_from_db()
            return run.step == "Saving"

        wait_for(saving, timeout=60, what="the worker to reach the last step")
        # Held at "Saving", the worker's heartbeat thread stamps the run a second on: a sweep
        # past the stale limit of the step's own stamp finds the run alive.
        reached = run.heartbeat_at

        def beaten():
            run.refresh_from_db()
            return run.heartbeat_at - reached >= timedelta(seconds=1)

        wait_for(beaten, timeout=30, what="a heartbeat while blocked")
        past_the_step = reached + timedelta(seconds=settings.REFRESH_STALE_SECONDS + 0.5)
        assert services.refresh_runs_sweep(now=past_the_step) == 0  # the heartbeat: alive
        run.refresh_from_db()
        assert run.status == "running" and run.step == "Saving"

        worker_lost(worker, blocker)
    finally:
        blocker.rollback()
        blocker.close()

    # The dead worker's heartbeat stopped: the sweep, run past the stale limit, fails the run.
    past_the_limit = timezone.now() + timedelta(seconds=settings.REFRESH_STALE_SECONDS + 1)
    assert services.refresh_runs_sweep(now=past_the_limit) == 1
    run.refresh_from_db()
    assert run.status == FAILED and "worker computing it stopped" in run.error
    assert "Saving" in run.error and run.finished_at is not None
    page = clinician_client.get("/dashboard/").content.decode()
    assert "data-run=" not in page  # no run that nothing is computing
    assert f"snapshot={previous.pk}" in page  # the previous snapshot is kept and shown
    assert clinician_client.get(f"/dashboard/runs/{run.pk}/").json()["status"] == FAILED

    # "Refresh now" starts a new run, which a new worker completes.
    next_worker = celery_worker_factory(extra_env=fast_heartbeat)
    assert clinician_client.post("/dashboard/refresh/").status_code == 302
    second = RefreshRun.objects.exclude(pk=run.pk).get()

    def finished():
        second.refresh_from_db()
        return second.status in (DONE, FAILED)

    wait_for(finished, timeout=60, what="the next run to finish")
    assert second.status == DONE, (second.error, next_worker.log())
    assert services.latest_snapshot(CohortFilter()) == second.snapshot
    assert DashboardSnapshot.objects.filter(pk=previous.pk).exists()
    run.refresh_from_db()
    assert run.status == FAILED  # a redelivered message never revives it


def test_the_nightly_refresh_is_one_task_per_cohort_for_any_worker(
    fresh_broker_pools, celery_worker_factory, wait_for, settings
):
    """Issue 22 item 5: the registry, each center and each recently opened filter is its own
    task, which any of the running workers may take."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    small_study()
    workers = [celery_worker_factory(), celery_worker_factory()]

    app.send_task("analytics.tasks.refresh_dashboard_nightly")
    wait_for(
        lambda: RefreshRun.objects.filter(status=DONE).count() == 3,
        timeout=180,
        what="three nightly snapshots (registry, alpha, beta)",
    )
    keys = set(DashboardSnapshot.objects.values_list("cohort_key", flat=True))
    assert keys == {
        CohortFilter().key,
        services.cohort_from_options({"center": "alpha"}).key,
        services.cohort_from_options({"center": "beta"}).key,
    }
    # Each cohort was its own task: three runs, three task executions between the workers.
    logs = [worker.log() for worker in workers]
    assert sum(_succeeded(log, "analytics.tasks.refresh_dashboard") for log in logs) == 3
