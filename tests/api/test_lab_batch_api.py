"""Results arriving in bulk through the API: all or nothing, errors named by their place."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from monitoring.models import Alert
from patients.models import LabResult
from tests.factories import BERLIN, InfusionFactory, PatientFactory

URL = "/api/v1/lab-results/"


@pytest.fixture
def two_patients(center):
    first = PatientFactory(center=center, study_id="CT-0101")
    second = PatientFactory(center=center, study_id="CT-0102")
    for patient in (first, second):
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return first, second


def sample(study_id, when, *values):
    return {"study_id": study_id, "collected_at": when, "values": list(values)}


def test_a_batch_for_two_patients_is_saved_and_raises_the_alert(
    lab_system, two_patients, frozen_now
):
    batch = {
        "samples": [
            sample(
                "CT-0101",
                "2025-03-08T08:00:00+01:00",
                {"analyte": "pb_bcell_abs", "qualifier": "undetectable", "unit": "cells/uL"},
            ),
            sample(
                "CT-0101",
                "2025-03-31T08:00:00+02:00",
                {"analyte": "pb_bcell_abs", "value": "0.012", "unit": "10^9/L"},
                {"analyte": "alc", "value": "900", "unit": "cells/uL"},
            ),
            sample(
                "CT-0102",
                "2025-03-08T08:00:00+01:00",
                {"analyte": "pb_bcell_abs", "value": "0", "unit": "cells/uL"},
            ),
        ]
    }
    response = lab_system.post(URL, batch, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["saved"] == 4
    count = LabResult.objects.get(
        patient__study_id="CT-0101",
        analyte="pb_bcell_abs",
        collected_at=datetime(2025, 3, 31, 8, tzinfo=BERLIN),
    )
    assert count.canonical_value == Decimal(12)  # 0.012 ×10⁹/L = 12 cells/µL
    alert = Alert.objects.get(patient__study_id="CT-0101")
    assert (alert.rule, alert.day) == ("early_regeneration", 30)


def test_one_bad_value_saves_nothing_and_names_its_place(lab_system, two_patients, frozen_now):
    batch = {
        "samples": [
            sample(
                "CT-0101",
                "2025-03-08T08:00:00+01:00",
                {"analyte": "pb_bcell_abs", "value": "3", "unit": "cells/uL"},
            ),
            sample(
                "CT-0102",
                "2025-03-08T08:00:00+01:00",
                {"analyte": "alc", "value": "1.1", "unit": "10^9/L"},
                {"analyte": "pb_bcell_pct", "value": "140", "unit": "% lymphocytes"},
            ),
        ]
    }
    response = lab_system.post(URL, batch, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Nothing was saved: see errors for each problem.",
        "errors": {"samples[1].values[1].value": ["A percentage cannot be over 100."]},
        "saved": 0,
    }
    assert LabResult.objects.count() == 0


def test_a_future_sample_and_a_unit_that_does_not_fit_are_both_reported(
    lab_system, two_patients, frozen_now
):
    batch = {
        "samples": [
            sample(
                "CT-0101",
                "2026-01-01T08:00:00+01:00",
                {"analyte": "pb_bcell_abs", "value": "3", "unit": "cells/uL"},
            ),
            sample(
                "CT-0102",
                "2025-03-08T08:00:00+01:00",
                {"analyte": "bm_mrd_flow", "value": "0.1", "unit": "cells/uL"},
            ),
        ]
    }
    errors = lab_system.post(URL, batch, format="json").json()["errors"]
    assert errors["samples[0].collected_at"] == ["The collection time is in the future."]
    assert "is not a unit of BM MRD, flow cytometry" in errors["samples[1].values[0].unit"][0]
    assert LabResult.objects.count() == 0


def test_unknown_or_other_centers_patients_are_refused(
    lab_system, two_patients, other_center, frozen_now
):
    PatientFactory(center=other_center, study_id="CT-0900")
    batch = {
        "samples": [
            sample(
                study_id,
                "2025-03-08T08:00:00+01:00",
                {"analyte": "pb_bcell_abs", "value": "0", "unit": "cells/uL"},
            )
            for study_id in ("CT-0101", "CT-0900", "NOPE")
        ]
    }
    response = lab_system.post(URL, batch, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["errors"]) == ["samples[1].study_id", "samples[2].study_id"]
    assert LabResult.objects.count() == 0


def test_malformed_input_gets_field_messages_not_a_500(lab_system, two_patients):
    response = lab_system.post(
        URL,
        {"samples": [{"study_id": "CT-0101", "values": [{"analyte": "xyz", "unit": "cells/uL"}]}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request was refused: see errors for each problem.",
        "errors": {
            "samples[0].collected_at": ["This field is required."],
            "samples[0].values[0].analyte": ['"xyz" is not a valid choice.'],
        },
    }


def test_the_api_needs_credentials_and_the_right_to_enter_results(registry, two_patients):
    anonymous = APIClient()
    assert anonymous.post(URL, {"samples": []}, format="json").status_code in (401, 403)
    assert anonymous.get("/api/v1/alerts/").status_code in (401, 403)
    assert anonymous.get("/api/schema/").status_code in (401, 403)
    reader = APIClient()
    reader.force_authenticate(registry)
    assert reader.post(URL, {"samples": []}, format="json").status_code == 403


def test_alerts_and_schema_for_a_signed_in_user(lab_system, two_patients):
    # The day after the detectable count: current news, so the alert is in the open list.
    with time_machine.travel(datetime(2025, 3, 21, 12, tzinfo=UTC), tick=False):
        _post_regeneration(lab_system)
    (alert,) = lab_system.get("/api/v1/alerts/").json()
    assert (alert["study_id"], alert["severity"], alert["day"]) == ("CT-0101", "high", 19)
    schema = lab_system.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/lab-results/" in schema.content


def test_an_old_course_sent_through_the_api_is_history_not_in_the_open_list(
    lab_system, two_patients, frozen_now, settings
):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default: more than 60 days late is history
    _post_regeneration(lab_system)  # March 2025, sent in November: history
    assert lab_system.get("/api/v1/alerts/").json() == []
    (alert,) = lab_system.get("/api/v1/alerts/?status=historical").json()
    assert (alert["study_id"], alert["severity"], alert["day"]) == ("CT-0101", "high", 19)


def _post_regeneration(lab_system):
    response = lab_system.post(
        URL,
        {
            "samples": [
                sample(
                    "CT-0101",
                    "2025-03-08T08:00:00+01:00",
                    {"analyte": "pb_bcell_abs", "qualifier": "undetectable", "unit": "cells/uL"},
                ),
                sample(
                    "CT-0101",
                    "2025-03-20T08:00:00+01:00",
                    {"analyte": "pb_bcell_abs", "value": "4", "unit": "cells/uL"},
                ),
            ]
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
