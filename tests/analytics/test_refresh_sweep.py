"""The sweep that fails refresh runs nothing is computing, at its time boundaries; registry
staff (read-only) cannot start a refresh."""

from datetime import timedelta

import pytest
import time_machine

from analytics import services
from analytics.models import FAILED, QUEUED, RUNNING, RefreshRun
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.REFRESH_STALE_SECONDS = 120
    settings.REFRESH_QUEUE_WAIT_SECONDS = 600


def _run(status, heartbeat_at=None) -> RefreshRun:
    with time_machine.travel(FIXED_NOW, tick=False):
        return RefreshRun.objects.create(
            cohort_key="all", status=status, step="Figures", progress=70, heartbeat_at=heartbeat_at
        )


def test_a_running_run_is_failed_only_after_its_heartbeat_stops(limits):
    run = _run(RUNNING, heartbeat_at=FIXED_NOW)
    assert services.refresh_runs_sweep(now=FIXED_NOW + timedelta(seconds=120)) == 0
    assert services.refresh_runs_sweep(now=FIXED_NOW + timedelta(seconds=121)) == 1
    run.refresh_from_db()
    assert run.status == FAILED
    assert "worker computing it stopped" in run.error and "Figures, 70 %" in run.error


def test_a_queued_run_no_worker_takes_is_failed_after_the_queue_wait(limits):
    run = _run(QUEUED)
    assert services.refresh_runs_sweep(now=FIXED_NOW + timedelta(seconds=600)) == 0
    assert services.refresh_runs_sweep(now=FIXED_NOW + timedelta(seconds=601)) == 1
    run.refresh_from_db()
    assert run.status == FAILED and "No worker picked it up" in run.error


def test_refresh_now_replaces_a_dead_run_with_a_new_one(limits, clinician_client, settings):
    dead = _run(RUNNING, heartbeat_at=FIXED_NOW - timedelta(hours=1))
    with time_machine.travel(FIXED_NOW, tick=False):
        page = clinician_client.get("/dashboard/").content.decode()
        assert "data-run=" not in page  # never shown as running
        assert clinician_client.post("/dashboard/refresh/").status_code == 302
    dead.refresh_from_db()
    assert dead.status == FAILED
    assert RefreshRun.objects.exclude(pk=dead.pk).count() == 1


def test_registry_staff_cannot_start_a_refresh(client, registry):
    client.force_login(registry)
    assert 'data-testid="refresh"' not in client.get("/dashboard/").content.decode()
    assert client.post("/dashboard/refresh/").status_code == 403
    assert RefreshRun.objects.count() == 0
