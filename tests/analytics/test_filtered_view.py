"""A filtered dashboard view is computed in the background the first time it is opened, with its
progress on the page, instead of waiting for someone to press "Refresh now"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import FAILED, DashboardSnapshot, RefreshRun
from tests.analytics.test_dataset import infused_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_process_tasks(settings):
    """Run Celery tasks in-process, as without a broker (the app reads the Django setting)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def test_first_view_of_a_filter_computes_it_for_a_reader_who_cannot_press_refresh(
    client, registry, in_process_tasks, django_capture_on_commit_callbacks
):
    infused_patient(followup=100)
    client.force_login(registry)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get("/dashboard/?center=alpha").content.decode()
    run = RefreshRun.objects.get()
    assert run.options == {"center": "alpha"} and run.requested_by == registry
    assert 'data-testid="run-status"' in first and "data-run=" in first  # progress polled

    run.refresh_from_db()
    assert run.status == "done"
    snapshot = DashboardSnapshot.objects.get()
    second = client.get("/dashboard/?center=alpha").content.decode()
    assert f"snapshots/{snapshot.pk}/figures.json" in second
    assert 'data-testid="no-snapshot"' not in second
    assert RefreshRun.objects.count() == 1  # computed once, then served from the snapshot


def test_the_unfiltered_view_waits_for_beat_or_refresh_now(
    clinician_client, django_capture_on_commit_callbacks
):
    infused_patient(followup=100)
    with django_capture_on_commit_callbacks(execute=False):
        html = clinician_client.get("/dashboard/").content.decode()
    assert not RefreshRun.objects.exists()
    assert 'data-testid="no-snapshot"' in html


def test_a_filter_that_failed_ten_minutes_ago_is_not_started_again_on_every_view(
    clinician_client, django_capture_on_commit_callbacks, frozen_now
):
    infused_patient(followup=100)
    failed = RefreshRun.objects.create(
        cohort_key="x", options={"center": "alpha"}, status=FAILED, error="boom"
    )

    def fail_at(minutes_ago: int) -> None:
        from analytics.services import cohort_from_options

        RefreshRun.objects.filter(pk=failed.pk).update(
            cohort_key=cohort_from_options({"center": "alpha"}).key,
            finished_at=timezone.now() - timedelta(minutes=minutes_ago),
        )

    fail_at(9)
    with django_capture_on_commit_callbacks(execute=False):
        clinician_client.get("/dashboard/?center=alpha")
    assert RefreshRun.objects.count() == 1

    fail_at(11)
    with django_capture_on_commit_callbacks(execute=False):
        clinician_client.get("/dashboard/?center=alpha")
    assert RefreshRun.objects.count() == 2
