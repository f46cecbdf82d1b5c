"""The API's door: local times in the patient's center's zone with the clinical day echoed,
typed numbers, soft limits confirmed per value, one JSON error shape for every status."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from patients.api.errors import exception_handler, json_or_html_500
from patients.models import LabResult
from tests.conftest import token_client
from tests.factories import InfusionFactory, PatientFactory

URL = "/api/v1/lab-results/"
SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.usefixtures("frozen_now")


def client_for(user) -> APIClient:
    return token_client(user)


@pytest.fixture
def shanghai_patient(other_center):
    patient = PatientFactory(center=other_center, study_id="SH-0001")
    InfusionFactory(patient=patient, infusion_date=date(2024, 4, 17))  # day 45 = 1 June 2024
    return patient


def one(study_id, when, value="0", unit="cells/uL", analyte="pb_bcell_abs", **extra):
    return {
        "samples": [
            {
                "study_id": study_id,
                "collected_at": when,
                "values": [{"analyte": analyte, "value": value, "unit": unit, **extra}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("sent", "stored", "day"),
    [
        # No offset: 23:30 in Shanghai, still day 45 (read in Berlin it would be day 46).
        ("2024-06-01T23:30:00", datetime(2024, 6, 1, 23, 30, tzinfo=SHANGHAI), 45),
        ("2024-06-01", datetime(2024, 6, 1, 0, 0, tzinfo=SHANGHAI), 45),
        # With an offset the moment is what it says: 05:30 on 2 June in Shanghai, day 46.
        ("2024-06-01T23:30:00+02:00", datetime(2024, 6, 2, 5, 30, tzinfo=SHANGHAI), 46),
    ],
)
def test_a_time_without_an_offset_is_the_centers_local_time_and_the_day_is_echoed(
    stranger, shanghai_patient, sent, stored, day
):
    response = client_for(stranger).post(URL, one("SH-0001", sent, "0"), format="json")
    assert response.status_code == 201, response.json()
    (result,) = LabResult.objects.all()
    assert result.collected_at == stored
    (echo,) = response.json()["samples"]
    assert echo["time_zone"] == "Asia/Shanghai"
    assert echo["collected_on"] == stored.date().isoformat()
    assert (echo["infusion_number"], echo["day"]) == (1, day)
    assert echo["ids"] == [result.pk]


def test_a_local_time_the_clock_skips_is_refused(clinician, center):
    PatientFactory(center=center, study_id="CT-0301")
    response = client_for(clinician).post(URL, one("CT-0301", "2025-03-30T02:30"), format="json")
    assert response.status_code == 400
    assert (
        "does not exist in Europe/Berlin" in response.json()["errors"]["samples[0].collected_at"][0]
    )


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "x"])
def test_impossible_times_are_refused_with_a_message(clinician, center, when):
    PatientFactory(center=center, study_id="CT-0302")
    response = client_for(clinician).post(URL, one("CT-0302", when), format="json")
    assert response.status_code == 400
    assert "samples[0].collected_at" in response.json()["errors"]


@pytest.mark.parametrize(
    ("value", "stored"), [("0,9", Decimal("0.9")), (0.9, Decimal("0.9")), (12, Decimal(12))]
)
def test_numbers_are_read_by_the_one_parser(clinician, center, value, stored):
    PatientFactory(center=center, study_id="CT-0303")
    response = client_for(clinician).post(
        URL, one("CT-0303", "2025-03-15T08:00:00+01:00", value), format="json"
    )
    assert response.status_code == 201, response.json()
    assert LabResult.objects.get().value == stored


@pytest.mark.parametrize("value", ["1,234", "1.234,5", "1E+999999", "NaN", True, [1]])
def test_ambiguous_numbers_are_refused_naming_the_value(clinician, center, value):
    PatientFactory(center=center, study_id="CT-0304")
    response = client_for(clinician).post(
        URL, one("CT-0304", "2025-03-15T08:00:00+01:00", value), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["samples[0].values[0].value"]
    assert not LabResult.objects.exists()


def test_a_json_number_too_large_for_a_float_is_refused(clinician, center):
    PatientFactory(center=center, study_id="CT-0305")
    body = (
        '{"samples": [{"study_id": "CT-0305", "collected_at": "2025-03-15T08:00:00+01:00", '
        '"values": [{"analyte": "alc", "value": 1E+999999, "unit": "cells/uL"}]}]}'
    )
    response = client_for(clinician).post(URL, body, content_type="application/json")
    assert response.status_code == 400 and "errors" in response.json()


def test_a_soft_limit_is_refused_naming_the_value_until_it_is_confirmed(clinician, center):
    patient = PatientFactory(center=center, study_id="CT-0306")
    client = client_for(clinician)
    unusual = one("CT-0306", "2025-03-15T08:00:00+01:00", "3000")
    refused = client.post(URL, unusual, format="json")
    assert refused.status_code == 400
    (message,) = refused.json()["errors"]["samples[0].values[0].value"]
    assert "3000 cells/µL" in message and '"confirmed": true' in message
    assert not LabResult.objects.exists()

    unusual["samples"][0]["values"][0]["confirmed"] = True
    assert client.post(URL, unusual, format="json").status_code == 201
    result = LabResult.objects.get(patient=patient)
    assert result.plausibility_confirmed and result.plausibility_confirmed_by == clinician
    assert result.history.get().history_user == clinician

    impossible = one("CT-0306", "2025-03-16T08:00:00+01:00", "200000", confirmed=True)
    assert client.post(URL, impossible, format="json").status_code == 400
    assert LabResult.objects.count() == 1


def test_every_api_error_is_json_of_one_shape(clinician, registry, center, settings):
    client = client_for(clinician)
    answers = {
        400: client.get("/api/v1/alerts/?status=%00"),
        403.1: APIClient().get("/api/v1/alerts/"),  # no credentials (401 or 403)
        403: client_for(registry).post(URL, {"samples": []}, format="json"),
        404: client.get("/api/v1/nothing-here/"),
        405: client.delete(URL),
    }
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    answers[413] = client.post(URL, one("X" * 30, "2025-03-15" + " " * 2000), format="json")
    for code, response in answers.items():
        assert response.status_code == int(code), (code, response.content[:200])
        assert response["Content-Type"].startswith("application/json"), code
        assert isinstance(response.json()["detail"], str), code
    assert "samples" not in answers[400].json()["errors"]
    assert list(answers[400].json()["errors"]) == ["status"]


def test_a_crash_in_the_api_is_a_json_500_and_the_pages_keep_their_html():
    request = RequestFactory().get("/api/v1/alerts/")
    response = exception_handler(RuntimeError("boom"), {"request": request})
    assert response.status_code == 500 and "boom" not in str(response.data)
    assert response.data["detail"].startswith("The server failed")
    api = json_or_html_500(request)
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    page = json_or_html_500(RequestFactory().get("/patients/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_the_schema_documents_the_error_answers(clinician):
    schema = client_for(clinician).get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/lab-results/"]["post"]["responses"]
    for code in ("400", "403", "404", "413", "500"):
        assert "Error" in str(post[code]), code
    assert "confirmed" in str(schema["components"]["schemas"]["LabValue"])
