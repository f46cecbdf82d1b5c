"""The patients app in the clinician's language (issue 23): a German or Chinese user sees the
validation errors, the plausibility and date messages in German or Chinese, chosen in the profile
or by the browser; numbers, units and the API's field names and codes stay as they are."""

from datetime import date

import pytest
from django.utils import translation

from patients import plausibility_checks
from patients.models import LabResult
from patients.plausibility import check_sample_date
from patients.validation import WHAT
from tests.factories import InfusionFactory, PatientFactory
from tests.patients.conftest import sample_data
from tests.patients.page_text import field_errors, sample_row_errors

URL = "/patients/CT-0001/samples/add/"

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture(autouse=True)
def _default_language_after(settings):
    """A request activates its user's language in the test's own thread: back to the default
    afterwards, so that no later test reads German or Chinese."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def german_client(client, clinician):
    clinician.profile.language = "de"
    clinician.profile.save()
    client.force_login(clinician)
    return client


def test_a_german_user_sees_the_decimal_comma_errors_in_german(german_client, infused_patient):
    data = sample_data("2025-03-15", pb_bcell_abs="1,234", alc="1.234,5")
    response = german_client.post(URL, data)
    assert response.status_code == 200
    page = response.content.decode()
    (ambiguous,) = sample_row_errors(page, "pb_bcell_abs")
    assert ambiguous.startswith("„1,234“ ist mehrdeutig: Es kann 1234 (mit Tausendertrennzeichen)")
    (separators,) = sample_row_errors(page, "alc")
    assert separators.startswith("„1.234,5“ hat mehr als ein Trennzeichen.")
    assert "ohne Tausendertrennzeichen" in separators
    assert not LabResult.objects.exists()


def test_a_german_user_sees_the_date_as_read_in_german(german_client, infused_patient):
    response = german_client.post(URL, sample_data("2025-01-29", pb_bcell_abs="15"))
    (message,) = field_errors(response.content.decode(), "collected_date")
    assert message == (
        "Das Entnahmedatum liegt mehr als 30 Tage vor der ersten Infusion. Gelesen als "
        "29. Januar 2025, Tag \u221231 nach der Infusion vom 1. März 2025; prüfen Sie das Datum "
        "anhand des Befunds. Wenn die Angabe stimmt, bestätigen Sie sie."
    )


def test_a_chinese_browser_sees_the_errors_in_chinese(clinician_client, infused_patient):
    data = sample_data("2025-03-15", pb_bcell_abs="20000", alc="1,234")
    response = clinician_client.post(URL, data, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    page = response.content.decode()
    (unusual,) = sample_row_errors(page, "pb_bcell_abs")
    # The number and the unit symbols are not translated.
    assert unusual.startswith("20000 cells/µL (20 ×10⁹/L) 对于")
    assert unusual.endswith(
        "异常偏高（高于 2000 cells/µL (2 ×10⁹/L)）：请检查数值及其单位。 如确认无误，请予以确认。"
    )
    assert sample_row_errors(page, "alc")[0].startswith("“1,234”有歧义")


def test_the_api_answers_in_the_callers_language_with_neutral_keys(lab_system, center):
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    batch = {
        "samples": [
            {
                "study_id": "CT-0101",
                "collected_at": "2025-01-29T08:00:00+01:00",
                "values": [{"analyte": "pb_bcell_abs", "value": "15", "unit": "cells/uL"}],
            }
        ]
    }
    response = lab_system.post(
        "/api/v1/lab-results/", batch, format="json", HTTP_ACCEPT_LANGUAGE="de"
    )
    assert response.status_code == 400
    (message,) = response.json()["errors"]["samples[0].collected_at"]
    assert message.startswith("Das Entnahmedatum liegt mehr als 30 Tage vor der ersten Infusion.")


def test_the_catalogues_keep_the_clinical_terms_and_the_numbers():
    with translation.override("zh-hans"):
        assert str(WHAT["infusion"]) == "输注"
        (finding,) = check_sample_date(
            date(2026, 2, 12), infusion_dates=[date(2026, 11, 2)], today=date(2026, 12, 2)
        )
        assert "读取为 2026年2月12日" in finding.message and "第 \u2212263 天" in finding.message
        assert str(plausibility_checks.CONFIRM_IT) == "如确认无误，请予以确认。"
    with translation.override("de"):
        from patients.vocabulary import Outcome

        assert str(Outcome.ANTI_LEUKEMIC.label) == "Antileukämische präemptive Therapie begonnen"
