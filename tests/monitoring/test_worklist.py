"""The hematologist's day: the worklist home page, relapse and death on alerts, the patient
header, and saving a sample that raises or withdraws an alert."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from monitoring.models import Alert
from patients import units
from tests.factories import (
    BERLIN,
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
)
from tests.monitoring.test_inbox import stored_alert
from tests.patients.conftest import sample_data

pytestmark = pytest.mark.usefixtures("frozen_now")
TODAY = date(2025, 11, 3)  # FIXED_NOW in Berlin


def section(html: str, testid: str) -> str:
    found = re.search(rf'<section[^>]*data-testid="{testid}".*?</section>', html, re.S)
    assert found, testid
    return found.group(0)


def window_patient(center, study_id: str, day: int, *, last_count_days_ago: int | None = None):
    patient = PatientFactory(center=center, study_id=study_id)
    InfusionFactory(patient=patient, infusion_date=TODAY - timedelta(days=day))
    if last_count_days_ago is not None:
        LabResultFactory(
            patient=patient,
            collected_at=datetime(2025, 11, 3, 8, 0, tzinfo=BERLIN)
            - timedelta(days=last_count_days_ago),
            value=Decimal("0.004"),
            unit=units.GIGA_PER_L,
        )
    return patient


def test_the_worklist_puts_open_high_alerts_first_newest_first_without_history(
    clinician_client, center
):
    stored_alert("CT-0001", center=center, days_ago=400)
    stored_alert("CT-0002", center=center, days_ago=1)
    stored_alert("CT-0003", center=center, severity="info", days_ago=2, rule="late_recovery")
    old = stored_alert("CT-0004", center=center, days_ago=3)
    Alert.objects.filter(pk=old.pk).update(historical=True)

    html = clinician_client.get("/").content.decode()

    high = section(html, "worklist-high")
    assert re.findall(r"(CT-\d+) — ", high) == ["CT-0002", "CT-0001"]
    assert "CT-0003" in section(html, "worklist-recent") and "CT-0003" not in high
    assert "CT-0004" not in html  # imported history is not work to do


def test_an_alert_of_a_relapsed_patient_needs_an_outcome_not_pre_emptive_therapy(
    clinician_client, center
):
    alert = stored_alert("CT-0001", center=center, days_ago=30)
    alert.details = {"recommendation": "Consider prompt pre-emptive anti-leukemic therapy."}
    alert.save()
    EventFactory(patient=alert.patient, kind="relapse", event_date=date(2025, 10, 20))

    high = section(clinician_client.get("/").content.decode(), "worklist-high")
    assert "Relapsed 20 Oct 2025" in high and "needs an outcome" in high

    page = clinician_client.get(reverse("monitoring:alert", args=[alert.pk])).content.decode()
    advice = re.search(r'data-testid="recommendation">(.*?)</p>', page, re.S).group(1)
    assert "relapsed on 20 Oct 2025" in advice and "Consider" not in advice
    assert "When it was raised, the alert advised: Consider prompt" in page
    inbox = clinician_client.get(reverse("monitoring:inbox")).content.decode()
    assert "Relapsed 20 Oct 2025" in inbox


def test_the_window_lists_day_0_to_45_with_last_count_and_counts_due(clinician_client, center):
    window_patient(center, "CT-0010", 0)
    window_patient(center, "CT-0011", 20, last_count_days_ago=2)
    window_patient(center, "CT-0012", 45, last_count_days_ago=9)  # older than 7 days: due
    window_patient(center, "CT-0013", 46, last_count_days_ago=1)  # outside the window
    died = window_patient(center, "CT-0014", 10)
    EventFactory(patient=died, kind="death", event_date=TODAY - timedelta(days=1))

    rows = re.findall(
        r"<tr[^>]*>\s*<td><a [^>]*>(CT-\d+)</a></td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>"
        r"\s*<td>(.*?)</td>",
        section(clinician_client.get("/").content.decode(), "worklist-window"),
        re.S,
    )
    by_id = {study_id: (day, count, since) for study_id, day, count, since in rows}
    assert set(by_id) == {"CT-0010", "CT-0011", "CT-0012"}
    assert by_id["CT-0011"][0] == "day 20"
    assert ">4<" in by_id["CT-0011"][1]  # 0.004 ×10⁹/L shown in cells/µL
    assert "Entered as 0.004 ×10⁹/L" in by_id["CT-0011"][1]
    assert by_id["CT-0011"][2].strip() == "2"
    assert "count due" in by_id["CT-0012"][2]
    assert "count due" not in by_id["CT-0010"][2]  # day 0: nothing is due yet
    assert list(by_id)[0] == "CT-0012"  # counts due first


def test_the_patient_header_says_relapsed_today_s_day_and_last_count(clinician_client, center):
    patient = window_patient(center, "CT-0020", 30, last_count_days_ago=3)
    EventFactory(patient=patient, kind="relapse", event_date=TODAY - timedelta(days=2))

    page = clinician_client.get(f"/patients/{patient.study_id}/").content.decode()
    header = re.search(r'data-testid="patient-status">(.*?)</p>', page, re.S).group(1)
    assert "Relapsed 1 Nov 2025" in header
    assert "day 30" in header
    assert "4 cells/µL" in header and "31 Oct 2025" in header


def test_saving_a_sample_that_raises_a_high_alert_says_so_with_a_link(
    clinician_client, center, settings
):
    patient = PatientFactory(center=center, study_id="CT-0030")
    InfusionFactory(patient=patient, infusion_date=date(2025, 10, 1))
    LabResultFactory(
        patient=patient, collected_at=datetime(2025, 10, 8, 8, 0, tzinfo=BERLIN), value=None,
        qualifier=units.UNDETECTABLE,
    )  # fmt: skip

    response = clinician_client.post(
        f"/patients/{patient.study_id}/samples/add/",
        sample_data("2025-10-21", pb_bcell_abs="12", alc="900"),
        follow=True,
    )

    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    message = re.search(r'<div class="message warning"[^>]*>(.*?)</div>', response.content.decode())
    assert message, "no warning message"
    assert "2 results recorded for 21 Oct 2025." in message.group(1)
    assert "raised a HIGH alert" in message.group(1)
    assert f'href="{alert.get_absolute_url()}"' in message.group(1)


def test_registry_staff_see_no_correct_links(client, registry, center):
    patient = window_patient(center, "CT-0040", 10, last_count_days_ago=1)
    client.force_login(registry)
    page = client.get(f"/patients/{patient.study_id}/").content.decode()
    assert ">Correct<" not in page and "/edit/" not in page
    assert "/history/" in page  # the value still leads to its history


def test_the_hematologist_picker_lists_only_the_centers_clinicians(
    clinician_client, clinician, stranger, center
):
    page = clinician_client.get("/patients/new/").content.decode()
    assert "Clara Clinician" in page and "stranger" not in page

    patient = PatientFactory(center=center, study_id="CT-0050")
    data = {"study_id": "CT-0050", "center": center.pk, "sex": "F", "diagnosis": "R/R B-ALL"}
    refused = clinician_client.post(
        f"/patients/{patient.study_id}/edit/", {**data, "hematologists": [stranger.pk]}
    )
    assert refused.status_code == 200 and not patient.hematologists.exists()
    clinician_client.post(
        f"/patients/{patient.study_id}/edit/", {**data, "hematologists": [clinician.pk]}
    )
    assert list(patient.hematologists.all()) == [clinician]


def test_a_new_patients_diagnosis_is_a_placeholder_not_a_prefilled_value(clinician_client, center):
    page = clinician_client.get("/patients/new/").content.decode()
    field = re.search(r'<input[^>]*name="diagnosis"[^>]*>', page).group(0)
    assert 'placeholder="R/R B-ALL"' in field and 'value="' not in field
    clinician_client.post(
        "/patients/new/", {"study_id": "CT-0060", "center": center.pk, "sex": "F", "diagnosis": ""}
    )
    assert PatientFactory._meta.model.objects.get(study_id="CT-0060").diagnosis == "R/R B-ALL"


def test_recent_changes_name_the_hematologists_not_their_ids(
    clinician_client, clinician, center, frozen_now
):
    patient = PatientFactory(center=center, study_id="CT-0070", date_of_birth=None)
    frozen_now.shift(60)  # the change comes a minute after the creation
    data = {"study_id": "CT-0070", "center": center.pk, "sex": "F", "diagnosis": "R/R B-ALL"}
    clinician_client.post(
        f"/patients/{patient.study_id}/edit/", {**data, "hematologists": [clinician.pk]}
    )
    page = clinician_client.get(f"/patients/{patient.study_id}/history/").content.decode()
    assert "<ins>Clara Clinician</ins>" in page  # hematologists: — → Clara Clinician
    assert "{&#x27;patient&#x27;" not in page and "{'patient'" not in page
