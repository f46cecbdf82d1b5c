"""One bad row never takes the dashboard down (issue 22, item 0).

A patient whose infusion has no product (legacy data, a hand correction, a later validation
rule: written straight into the table here) breaks the analysis dataset's schema. The snapshot
leaves that patient out, names them (study ID, column, problem) to those who may see them, and
computes everything else from exactly the rows it exports.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.test import Client

from analytics import services
from analytics.dataset import CohortFilter, analysis_csv, analysis_frame
from analytics.dataset_schema import read_analysis_csv, split_analysis_frame
from patients.models import Infusion
from tests.analytics.test_snapshot import small_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken(frozen_now):
    patients = small_study()
    bad = patients["early_immuno_1"]
    Infusion.objects.filter(patient=bad).update(product="")  # bypasses every validation
    return bad


def test_the_strict_reader_still_refuses_the_table(broken):
    with pytest.raises(ValueError, match="product.*blank but required"):
        read_analysis_csv(io.StringIO(analysis_csv(analysis_frame(CohortFilter()))))


def test_snapshot_leaves_the_bad_row_out_names_it_and_computes_the_rest(broken):
    snapshot = services.snapshot_compute()
    assert snapshot.n_patients == 11  # 12 infused, one left out
    assert snapshot.excluded == [
        {
            "study_id": broken.study_id,
            "center": "alpha",
            "column": "product",
            "problem": "is blank but required",
        }
    ]
    # The numbers come from exactly the rows the export gives, and those read strictly.
    exported = read_analysis_csv(io.StringIO(snapshot.table_csv))
    assert len(exported) == 11
    assert broken.study_id not in set(exported["study_id"])
    assert snapshot.report["cr_rate"]["n_infused"] == 11


def test_without_a_bad_row_nothing_is_left_out(frozen_now):
    small_study()
    snapshot = services.snapshot_compute()
    assert snapshot.excluded == []
    assert snapshot.n_patients == 12


def test_dashboard_names_the_patient_to_their_center_and_registry_only(
    broken, clinician, stranger, registry
):
    services.snapshot_compute()
    for user, named in ((clinician, True), (registry, True), (stranger, False)):
        browser = Client()
        browser.force_login(user)
        html = browser.get("/dashboard/").content.decode()
        assert "1 patient left out of these numbers" in html, user.username
        assert (broken.study_id in html) is named, user.username
        if named:
            assert "is blank but required" in html


def test_admin_shows_the_left_out_patient(broken, admin_client):
    snapshot = services.snapshot_compute()
    html = admin_client.get(f"/admin/analytics/dashboardsnapshot/{snapshot.pk}/change/")
    assert html.status_code == 200
    assert f"{broken.study_id} (alpha): product is blank but required" in html.content.decode()


def test_split_names_every_problem_and_keeps_the_order_of_good_rows(broken):
    text = io.StringIO(analysis_csv(analysis_frame(CohortFilter())))
    table = pd.read_csv(text, dtype=str, keep_default_na=False, na_filter=False)
    frame, excluded = split_analysis_frame(table)
    assert [e.study_id for e in excluded] == [broken.study_id]
    kept = [s for s in table["study_id"] if s != broken.study_id]
    assert list(frame["study_id"]) == kept
