"""The dashboard's "Export CSV" gives the rows its numbers were computed from, so a
statistician recomputes every headline figure from the file even after the data moved on."""

import io
import json

import pytest
from django.core.management import call_command

from analytics.dataset_schema import read_analysis_csv
from analytics.report import headline_report
from analytics.services import snapshot_compute
from tests.analytics.test_dataset import infused_patient
from tests.analytics.test_snapshot import small_study


@pytest.mark.django_db
def test_a_snapshots_export_reproduces_its_numbers_after_the_data_changed(
    client, registry, center, frozen_now, tmp_path
):
    """Registry staff export every center's rows (a hematologist gets only their own)."""
    client.force_login(registry)
    small_study(center=center)
    snapshot = snapshot_compute(options={})
    infused_patient(center=center, study_id="CT-LATER", followup=100)  # data moves on

    response = client.get(f"/dashboard/export.csv?snapshot={snapshot.pk}")
    assert response.status_code == 200
    table = read_analysis_csv(io.StringIO(response.content.decode()))
    assert "CT-LATER" not in set(table["study_id"])
    recomputed = json.loads(json.dumps(headline_report(table)))
    assert recomputed == snapshot.report

    # The same file through the command line gives the same medians.
    path = tmp_path / "export.csv"
    path.write_bytes(response.content)
    out = io.StringIO()
    call_command("survival_report", "--csv", str(path), "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert (
        printed["rfs"]["median_brookmeyer_crowley"]
        == (snapshot.report["rfs"]["median_brookmeyer_crowley"])
    )


@pytest.mark.django_db
def test_an_unknown_snapshot_is_a_404(clinician_client):
    assert clinician_client.get("/dashboard/export.csv?snapshot=999999").status_code == 404
