"""export_timeline writes a stored patient's course as timeline JSON; check_timeline on it gives
exactly the patient's stored findings, for every patient of the demo cohort."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import transaction

from demo import cohort as demo
from monitoring.models import WITHDRAWN, Alert
from patients.models import Patient

LOADED_AT = datetime.combine(
    demo.DATA_CUTOFF + timedelta(days=1), datetime.min.time(), tzinfo=UTC
).replace(hour=12)


@pytest.fixture(scope="module")
def demo_cohort(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), time_machine.travel(LOADED_AT, tick=False):
        with transaction.atomic():
            call_command("load_demo_cohort", "--quiet-logins", stdout=StringIO())
            yield
            transaction.set_rollback(True)


def _stored(patient) -> set[tuple]:
    return {
        (a.rule, a.infusion_id, a.day, tuple(sorted(e["result_id"] for e in a.evidence)))
        for a in Alert.objects.filter(patient=patient).exclude(status=WITHDRAWN)
    }


def test_check_timeline_on_every_exported_demo_patient_gives_its_stored_findings(
    demo_cohort, db, tmp_path
):
    patients = Patient.objects.filter(is_synthetic=True).select_related("center")
    assert patients.count() == demo.N_PATIENTS + len(demo.LIVE_PATIENTS)  # and the newcomers
    with_findings = 0
    for patient in patients:
        path = tmp_path / f"{patient.study_id}.json"
        call_command("export_timeline", patient.study_id, "--output", str(path))
        document = json.loads(path.read_text())
        assert "full_name" not in document and "mrn" not in document
        assert len(document["results"]) == patient.lab_results.count()
        out = StringIO()
        call_command(
            "check_timeline",
            str(path),
            "--as-of",
            LOADED_AT.date().isoformat(),
            "--center",
            patient.center.code,
            stdout=out,
        )
        findings = {
            (
                f["rule"],
                f["infusion_id"],
                f["day"],
                tuple(sorted(e["result_id"] for e in f["evidence"])),
            )
            for f in json.loads(out.getvalue())["findings"]
        }
        assert findings == _stored(patient), patient.study_id
        with_findings += bool(findings)
    # the cohort's regenerations, MRD and CAR findings (39 under issue 12's window ends)
    assert with_findings >= 39


def test_an_unknown_study_id_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no patient with the study ID 'NOPE'"):
        call_command("export_timeline", "NOPE")
