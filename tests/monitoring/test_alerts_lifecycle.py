"""An alert's page and its lifecycle: acknowledge, then close with an outcome.

The outcomes are kept so that each rule's usefulness can be measured (CLINICAL.md section 4), so
closing asks for the therapy that was started, or for the reason an alert was not relevant. The
alert here is raised by the rules engine from recorded counts (aplasia on day 7, B cells back on
day 30 after the infusion of 1 March 2025).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from html import unescape

import pytest
from django.urls import reverse

from monitoring.models import ACKNOWLEDGED, CLOSED, OPEN, WITHDRAWN, Alert, AlertEvent
from patients.models import PreemptiveTherapy
from patients.services import LabValue, clinical_record_delete, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.conftest import FIXED_NOW
from tests.factories import BERLIN, InfusionFactory, PatientFactory, TherapyFactory

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def patient(center, clinician):
    patient = PatientFactory(center=center, study_id="CT-0401")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


def _count(patient, on: date, value: Decimal | None, user):
    qualifier = "" if value is not None else UNDETECTABLE
    return lab_results_record(
        patient=patient,
        collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
        values=[LabValue(PB_BCELL_ABS, value, CELLS_PER_UL, qualifier)],
        entered_by=user,
    )[0]


@pytest.fixture
def alert(patient, clinician) -> Alert:
    _count(patient, date(2025, 3, 8), None, clinician)
    _count(patient, date(2025, 3, 31), Decimal("7.31"), clinician)
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def url(name: str, alert: Alert) -> str:
    return reverse(f"monitoring:{name}", args=[alert.pk])


def page_messages(response) -> list[str]:
    return [
        unescape(m)
        for m in re.findall(
            r'<div class="message [^"]*" role="status"[^>]*>(.*?)</div>',
            response.content.decode(),
            re.S,
        )
    ]


def field_errors(response, field: str) -> list[str]:
    for block in re.findall(
        r'<div class="field[^"]*">(.*?)</div>', response.content.decode(), re.S
    ):
        if f'name="{field}"' in block:
            return [unescape(m) for m in re.findall(r'<p class="error">(.*?)</p>', block)]
    raise AssertionError(f"no field {field!r} on the page")


# --- The alert page ------------------------------------------------------------------------


def test_alert_page_shows_the_evidence_and_basis(clinician_client, alert):
    page = clinician_client.get(url("alert", alert)).content.decode()

    assert "Early B-cell regeneration" in page
    evidence = re.search(r'data-testid="evidence".*?</table>', page, re.S).group(0)
    assert "day 7" in evidence and "Undetectable" in evidence
    assert "day 30" in evidence and "7.31 cells/µL" in evidence
    assert "default-1" in page  # the parameters' version
    assert "not an order" in page
    assert f'action="{url("acknowledge", alert)}"' in page


def test_a_clinician_of_another_center_gets_404(client, stranger, alert):
    client.force_login(stranger)

    assert client.get(url("alert", alert)).status_code == 404
    assert client.post(url("acknowledge", alert)).status_code == 404
    assert client.post(url("close", alert), {"outcome": "observation"}).status_code == 404
    alert.refresh_from_db()
    assert alert.status == OPEN


def test_registry_staff_may_read_but_not_act(client, registry, alert):
    client.force_login(registry)

    page = client.get(url("alert", alert))
    assert page.status_code == 200
    assert url("acknowledge", alert) not in page.content.decode()
    assert client.post(url("acknowledge", alert)).status_code == 403
    assert client.post(url("close", alert), {"outcome": "observation"}).status_code == 403
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == (OPEN, None)


@pytest.mark.parametrize("name", ["acknowledge", "close"])
def test_acting_on_an_alert_needs_post(clinician_client, alert, name):
    assert clinician_client.get(url(name, alert)).status_code == 405
    alert.refresh_from_db()
    assert alert.status == OPEN


def test_alert_page_accepts_only_get(clinician_client, alert):
    assert clinician_client.post(url("alert", alert)).status_code == 405


# --- Acknowledge ---------------------------------------------------------------------------


def test_acknowledge_records_who_and_when(clinician_client, clinician, alert):
    response = clinician_client.post(url("acknowledge", alert), follow=True)

    # On to the close form, in the same place, with the focus moved to it.
    assert response.redirect_chain == [(url("alert", alert) + "?acknowledged=1", 302)]
    html = response.content.decode()
    assert '<h2 id="close-title" tabindex="-1" data-focus="first">' in html
    assert html.index('id="close"') < html.index('id="evidence"')
    alert.refresh_from_db()
    assert alert.status == ACKNOWLEDGED
    assert (alert.acknowledged_by, alert.acknowledged_at) == (clinician, FIXED_NOW)
    event = alert.events.last()
    assert (event.old_status, event.new_status, event.user) == (OPEN, ACKNOWLEDGED, clinician)
    assert any("Alert acknowledged" in m for m in page_messages(response))


def test_acknowledge_from_the_inbox_returns_to_the_inbox(clinician_client, alert):
    inbox = reverse("monitoring:inbox") + "?severity=high"

    response = clinician_client.post(url("acknowledge", alert), {"next": inbox})

    assert response.status_code == 302 and response.url == inbox


def test_acknowledge_does_not_redirect_to_another_site(clinician_client, alert):
    response = clinician_client.post(
        url("acknowledge", alert), {"next": "https://phishing.example/carttrack"}
    )

    assert response.status_code == 302
    assert response.url == url("alert", alert) + "?acknowledged=1"


def test_acknowledging_twice_changes_nothing(clinician_client, clinician, alert):
    clinician_client.post(url("acknowledge", alert))
    alert.refresh_from_db()
    first = alert.acknowledged_at

    response = clinician_client.post(url("acknowledge", alert), follow=True)

    assert any("Only an open alert can be acknowledged" in m for m in page_messages(response))
    alert.refresh_from_db()
    assert alert.acknowledged_at == first
    assert alert.events.filter(new_status=ACKNOWLEDGED).count() == 1


# --- Close ---------------------------------------------------------------------------------


def test_close_with_anti_leukemic_therapy_already_recorded(
    clinician_client, clinician, patient, alert
):
    therapy = TherapyFactory(
        patient=patient,
        start_date=date(2025, 4, 2),
        category="anti_leukemic",
        agent="targeted",
        agent_detail="blinatumomab",
    )

    response = clinician_client.post(
        url("close", alert), {"outcome": "anti_leukemic", "therapy": therapy.pk}
    )

    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.outcome, alert.therapy) == (CLOSED, "anti_leukemic", therapy)
    assert (alert.closed_by, alert.closed_at) == (clinician, FIXED_NOW)
    # Closed without a separate acknowledgement: closing acknowledges it too.
    assert (alert.acknowledged_by, alert.acknowledged_at) == (clinician, FIXED_NOW)
    assert alert.events.last().new_status == CLOSED


def test_close_recording_the_therapy_from_the_form(clinician_client, patient, alert):
    response = clinician_client.post(
        url("close", alert),
        {
            "outcome": "anti_leukemic",
            "start_date": "2025-04-02",
            "agent": "chemotherapy",
            "agent_detail": "FLAG-Ida",
        },
    )

    assert response.status_code == 302
    therapy = PreemptiveTherapy.objects.get(patient=patient)
    assert (therapy.start_date, therapy.category, therapy.agent, therapy.agent_detail) == (
        date(2025, 4, 2),
        "anti_leukemic",
        "chemotherapy",
        "FLAG-Ida",
    )
    alert.refresh_from_db()
    assert (alert.status, alert.therapy) == (CLOSED, therapy)
    assert therapy.history.count() == 1  # saved through the audited service


def test_close_as_anti_leukemic_with_an_immunomodulatory_agent_is_refused(
    clinician_client, patient, alert
):
    response = clinician_client.post(
        url("close", alert),
        {"outcome": "anti_leukemic", "start_date": "2025-04-02", "agent": "interferon"},
    )

    assert response.status_code == 400
    assert "That therapy is immunomodulatory, not anti-leukemic." in response.content.decode()
    assert not PreemptiveTherapy.objects.exists()
    alert.refresh_from_db()
    assert alert.status == OPEN


def test_close_as_anti_leukemic_without_a_therapy_is_refused(clinician_client, alert):
    response = clinician_client.post(url("close", alert), {"outcome": "anti_leukemic"})

    assert response.status_code == 400
    assert field_errors(response, "therapy") == [
        "Link the therapy that was started, or record it here."
    ]
    alert.refresh_from_db()
    assert alert.status == OPEN


def test_not_relevant_needs_a_reason(clinician_client, alert):
    response = clinician_client.post(
        url("close", alert), {"outcome": "not_relevant", "reason": "   "}
    )

    assert response.status_code == 400
    assert field_errors(response, "reason") == ["Say why the alert is not relevant."]
    alert.refresh_from_db()
    assert alert.status == OPEN and alert.outcome == ""
    assert not alert.events.filter(new_status=CLOSED).exists()


def test_not_relevant_with_a_reason_closes_and_keeps_the_reason(clinician_client, alert):
    reason = "Count repeated next day: undetectable (sample mix-up)."

    clinician_client.post(url("close", alert), {"outcome": "not_relevant", "reason": reason})

    alert.refresh_from_db()
    assert (alert.status, alert.outcome, alert.outcome_reason) == (CLOSED, "not_relevant", reason)
    assert alert.events.last().reason == reason


def test_closing_twice_shows_a_message_and_changes_nothing(clinician_client, clinician, alert):
    clinician_client.post(url("close", alert), {"outcome": "observation"})
    alert.refresh_from_db()
    closed = (alert.status, alert.outcome, alert.closed_at, alert.events.count())

    response = clinician_client.post(
        url("close", alert), {"outcome": "not_relevant", "reason": "second thoughts"}
    )

    assert response.status_code == 400
    assert "This alert is already closed." in response.content.decode()
    alert.refresh_from_db()
    assert (alert.status, alert.outcome, alert.closed_at, alert.events.count()) == closed


def test_a_withdrawn_alert_cannot_be_closed(clinician_client, clinician, alert):
    regeneration = alert.patient.lab_results.get(value__isnull=False)
    clinical_record_delete(instance=regeneration, user=clinician)
    alert.refresh_from_db()
    assert alert.status == WITHDRAWN

    response = clinician_client.post(url("close", alert), {"outcome": "observation"})

    assert response.status_code == 400
    alert.refresh_from_db()
    assert (alert.status, alert.outcome) == (WITHDRAWN, "")
    assert not AlertEvent.objects.filter(alert=alert, new_status=CLOSED).exists()
