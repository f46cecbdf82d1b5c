"""Dashboard snapshots: computed in memory, stored in one insert, never changed afterwards.

``small_study`` (a 12-patient cohort with every analysis estimable) is reused by the dashboard
tests.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from analytics import services
from analytics.dataset import CohortFilter, analysis_csv, analysis_frame
from analytics.dataset_schema import read_analysis_csv
from analytics.models import DONE, FAILED, RUNNING, DashboardSnapshot, RefreshRun
from analytics.report import headline_report
from patients import units
from patients.models import LabResult
from patients.services import clinical_record_save
from tests.analytics.test_dataset import infused_patient, on
from tests.factories import CenterFactory

pytestmark = pytest.mark.django_db

FIGURES = {
    "rfs",
    "os",
    "rfs_by_early_regeneration",
    "rfs_by_preemptive_category",
    "rfs_by_mrd_positive",
    "rfs_by_car_loss",
    "landmark",
    "cir",
}


def small_study(center=None, beta=None) -> dict[str, object]:
    """12 infused patients, 10 in CR: early regenerators relapse more (as in the study).

    Patients 1-9 are at ``center`` (alpha), 10-12 at ``beta`` (Shanghai), so a center filter
    has something to select.
    """
    alpha = center or CenterFactory(code="alpha", name="Center Alpha")
    beta = beta or CenterFactory(code="beta", name="Center Beta", time_zone="Asia/Shanghai")
    p = {}
    # Early regenerators (detectable B cells by day 45).
    p["early_immuno_1"] = infused_patient(
        center=alpha,
        bcells={7: None, 21: 5},
        therapy=(25, "immunomodulatory"),
        relapse=110,
        death=200,
        mrd={28: 0.05},
        car={28: 900, 90: None},
    )
    p["early_immuno_2"] = infused_patient(
        center=alpha,
        bcells={7: None, 28: 9},
        therapy=(31, "immunomodulatory"),
        relapse=140,
        followup=290,
        mrd={28: None},
        car={28: 600, 90: None},
    )
    p["early_anti_1"] = infused_patient(
        center=alpha,
        bcells={7: None, 35: 3},
        therapy=(38, "anti_leukemic"),
        followup=280,
        mrd={28: None},
        car={28: 1200, 90: 700},
    )
    p["early_anti_2"] = infused_patient(
        center=alpha,
        bcells={7: None, 30: 6},
        therapy=(33, "anti_leukemic"),
        relapse=250,
        followup=290,
        mrd={28: 0.02},
        car={28: 300, 90: 250},
    )
    p["early_untreated"] = infused_patient(
        center=alpha,
        bcells={7: None, 14: 4},
        relapse=90,
        followup=200,
        mrd={28: 0.4},
    )
    # No early regeneration.
    p["late"] = infused_patient(
        center=alpha,
        bcells={7: None, 60: 5},
        followup=300,
        mrd={28: None},
        car={28: 800},
    )
    p["aplasia_relapse"] = infused_patient(
        center=alpha,
        bcells={7: None, 14: None, 90: None},
        relapse=210,
        followup=290,
        mrd={28: None},
        car={28: 400, 90: 300},
    )
    p["aplasia_nrm"] = infused_patient(center=alpha, bcells={7: None, 14: None}, death=120)
    p["aplasia_hsct"] = infused_patient(
        center=alpha,
        bcells={7: None, 14: None, 120: 4},
        hsct=100,
        followup=260,
    )
    p["aplasia_beta"] = infused_patient(
        center=beta,
        bcells={7: None, 28: None},
        relapse=180,
        death=270,
        mrd={28: 0.01},
    )
    # Not in remission.
    p["nr"] = infused_patient(center=beta, responses=((28, "NR"),), death=100)
    p["pr"] = infused_patient(center=beta, responses=((28, "PR"),), followup=150)
    return p


@pytest.fixture
def study():
    return small_study()


def test_snapshot_stores_report_figures_size_and_data_version(study):
    version = services.data_version()
    snapshot = services.snapshot_compute(options={})
    stored = DashboardSnapshot.objects.get(pk=snapshot.pk)
    assert stored.cohort_key == CohortFilter().key
    assert stored.cohort_label == "all infused patients"
    assert stored.n_patients == 12
    assert stored.data_version == version != "empty"
    assert stored.report["cohort"] == {
        "n_infused": 12,
        "n_complete_remission": 10,
        "n_synthetic": 0,
    }
    assert (stored.report["cr_rate"]["successes"], stored.report["cr_rate"]["n"]) == (10, 12)
    assert set(stored.figures) == FIGURES
    assert stored.figures["rfs"]["data"] and "layout" in stored.figures["rfs"]
    json.dumps(stored.report, allow_nan=False)  # stored JSON never carries NaN
    assert stored.duration_ms >= 0


def test_snapshot_report_is_the_report_of_the_exported_csv(study):
    snapshot = services.snapshot_compute(options={})
    exported = read_analysis_csv(io.StringIO(analysis_csv(analysis_frame())))
    assert DashboardSnapshot.objects.get(pk=snapshot.pk).report == json.loads(
        json.dumps(headline_report(exported))
    )


def test_center_snapshot_covers_that_center_only(study):
    snapshot = services.snapshot_compute(options={"center": "beta"})
    assert snapshot.cohort_key == CohortFilter(center="beta").key
    assert snapshot.cohort_label == "center beta"
    assert snapshot.n_patients == 3
    assert snapshot.report["cohort"]["n_complete_remission"] == 1
    assert services.latest_snapshot(CohortFilter()) is None
    assert services.latest_snapshot(CohortFilter(center="beta")) == snapshot


def test_snapshot_of_a_cohort_without_patients_is_stored_empty(study):
    CenterFactory(code="gamma", name="Center Gamma")
    snapshot = services.snapshot_compute(options={"center": "gamma"})
    assert snapshot.n_patients == 0
    assert snapshot.report["cr_rate"]["proportion"] is None
    assert snapshot.figures == {}


@pytest.mark.parametrize("failing", ["headline_report", "dashboard_figures"])
def test_failing_analysis_stores_nothing_and_keeps_the_previous_snapshot(
    study, monkeypatch, failing
):
    previous = services.snapshot_compute(options={})

    def broken(*args, **kwargs):
        raise RuntimeError("singular matrix")

    monkeypatch.setattr(services, failing, broken)
    with pytest.raises(RuntimeError, match="singular matrix"):
        services.snapshot_compute(options={})
    assert list(DashboardSnapshot.objects.values_list("pk", flat=True)) == [previous.pk]
    assert services.latest_snapshot(CohortFilter()) == previous


def test_refresh_run_records_progress_and_the_snapshot(study):
    run = RefreshRun.objects.create(
        cohort_key=CohortFilter(center="alpha").key, options={"center": "alpha"}
    )
    result = services.refresh_run_execute(run_id=run.pk)
    assert (result.status, result.step, result.progress) == (DONE, "Done", 100)
    assert result.finished_at is not None and result.error == ""
    assert result.snapshot.n_patients == 9
    assert services.latest_snapshot(CohortFilter(center="alpha")) == result.snapshot


def test_failed_refresh_run_says_why_and_keeps_the_previous_snapshot(study, monkeypatch):
    previous = services.snapshot_compute(options={})
    run = RefreshRun.objects.create(cohort_key=CohortFilter().key, options={})

    def broken(*args, **kwargs):
        raise RuntimeError("figure backend exploded")

    monkeypatch.setattr(services, "dashboard_figures", broken)
    result = services.refresh_run_execute(run_id=run.pk)
    assert result.status == FAILED
    assert result.error == "RuntimeError: figure backend exploded"
    assert result.finished_at is not None
    assert result.snapshot is None
    assert result.step == "Figures"  # where it stopped, for the page
    assert services.latest_snapshot(CohortFilter()) == previous
    assert DashboardSnapshot.objects.count() == 1


def test_a_finished_run_delivered_again_is_not_recomputed(study):
    """Tasks are acknowledged late, so a worker crash can deliver a run twice."""
    run = RefreshRun.objects.create(cohort_key=CohortFilter().key, options={})
    first = services.refresh_run_execute(run_id=run.pk)
    again = services.refresh_run_execute(run_id=run.pk)
    assert again.snapshot_id == first.snapshot_id
    assert DashboardSnapshot.objects.count() == 1


def test_a_run_another_worker_computes_is_not_computed_twice(study):
    """The claim is conditional (queued -> running): a message delivered while another
    worker holds the run leaves the run to that worker."""
    run = RefreshRun.objects.create(
        cohort_key=CohortFilter().key, options={}, status=RUNNING, attempts=1, step="Figures"
    )
    again = services.refresh_run_execute(run_id=run.pk)
    assert (again.status, again.attempts, again.step) == (RUNNING, 1, "Figures")
    assert DashboardSnapshot.objects.count() == 0


def test_refresh_if_changed_recomputes_only_after_a_change(frozen_now, clinician):
    patients = small_study()
    first = services.refresh_if_changed()
    assert first is not None  # no snapshot yet
    assert services.refresh_if_changed() is None  # nothing changed
    assert DashboardSnapshot.objects.count() == 1

    # The day-14 count of an "early regenerator" was a typing error: it was undetectable.
    frozen_now.shift(timedelta(hours=1))
    lab = LabResult.objects.get(
        patient=patients["early_untreated"],
        analyte=units.PB_BCELL_ABS,
        collected_at__date=on(14),
    )
    lab.value, lab.qualifier = None, units.UNDETECTABLE
    clinical_record_save(instance=lab, user=clinician)
    assert services.data_version() != first.data_version

    second = services.refresh_if_changed()
    assert second is not None and second.pk != first.pk
    assert second.data_version == services.data_version()

    def early_group(snapshot):
        groups = snapshot.report["logrank"]["early_regeneration"]["groups"]
        return next(g for g in groups if g["label"] == "early regeneration")

    assert early_group(first)["n"] == 5
    assert early_group(second)["n"] == 4
    assert services.refresh_if_changed() is None


def test_new_rule_parameters_count_as_a_data_change(frozen_now):
    from monitoring.services import rule_parameters_publish

    small_study()
    first = services.refresh_if_changed()
    frozen_now.shift(timedelta(hours=1))
    rule_parameters_publish(center=None, user=None, values={"bcell_threshold": Decimal(5)})
    second = services.refresh_if_changed()
    assert second is not None and second.data_version != first.data_version


def test_snapshots_are_never_changed(study, frozen_now):
    first = services.snapshot_compute(options={})
    before = DashboardSnapshot.objects.filter(pk=first.pk).values().get()
    frozen_now.shift(timedelta(minutes=10))
    infused_patient(responses=((28, "NR"),), death=60)
    second = services.snapshot_compute(options={})
    after = DashboardSnapshot.objects.filter(pk=first.pk).values().get()
    assert after == before
    assert (second.n_patients, first.n_patients) == (13, 12)
    assert second.computed_at > first.computed_at
    assert services.latest_snapshot(CohortFilter()) == second
    assert DashboardSnapshot.objects.latest() == second


def test_a_centers_alert_window_does_not_break_the_snapshot(study):
    """One center widening its early-regeneration alert window (60 days) must not make every
    snapshot fail validation (see test_dataset for the column itself)."""
    from monitoring.services import rule_parameters_publish

    alpha = study["late"].center
    rule_parameters_publish(center=alpha, user=None, values={"window_days": 60})
    snapshot = services.snapshot_compute(options={})
    assert snapshot.n_patients == 12
