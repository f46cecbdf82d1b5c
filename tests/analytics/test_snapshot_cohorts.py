"""The nightly refresh's cohorts (issue 22 item 5): the registry, each center with infused
patients, and every filter opened within SNAPSHOT_FILTER_KEEP_DAYS, each its own refresh run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import services
from analytics.models import DONE, DashboardSnapshot, RefreshRun
from tests.analytics.test_snapshot import small_study
from tests.factories import CenterFactory

pytestmark = pytest.mark.django_db


def _opened(options: dict, *, days_ago: float) -> DashboardSnapshot:
    snapshot = services.snapshot_compute(options=options)
    DashboardSnapshot.objects.filter(pk=snapshot.pk).update(
        computed_at=timezone.now() - timedelta(days=days_ago)
    )
    return snapshot


def test_cohorts_are_registry_centers_with_patients_and_recent_filters(settings, frozen_now):
    settings.SNAPSHOT_FILTER_KEEP_DAYS = 30
    small_study()
    CenterFactory(code="gamma", name="Center Gamma")  # no patients: nothing to compute
    _opened({"product": "CD19 CAR-T"}, days_ago=30 - 1 / 86400)  # inside, by a second
    _opened({"infused_from": "2021-01-01"}, days_ago=30 + 1 / 86400)  # outside, by a second
    assert services.snapshot_cohorts() == [
        {},
        {"center": "alpha"},
        {"center": "beta"},
        {"product": "CD19 CAR-T"},
    ]


def test_the_nightly_refresh_queues_one_run_per_cohort_and_never_twice(
    settings, frozen_now, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    small_study()
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.snapshots_refresh_all()
    assert len(runs) == 3
    assert set(RefreshRun.objects.values_list("status", flat=True)) == {DONE}
    assert DashboardSnapshot.objects.count() == 3

    settings.CELERY_TASK_ALWAYS_EAGER = False  # runs stay queued: a second night reuses them
    RefreshRun.objects.update(status="queued")
    again = services.snapshots_refresh_all()
    assert {run.pk for run in again} == {run.pk for run in runs}
    assert RefreshRun.objects.count() == 3
