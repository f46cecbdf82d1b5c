"""The end-to-end probe (issue 18): a true high alert must reach a clinician who can act on it.

A patient with no named hematologist; a laboratory (a system sender, not a clinician) sends, on
day 53 after the infusion, a count collected on day 45 (8 days late) after aplasia. It must be a
high alert on the center's worklist, e-mailed to the center's clinicians naming the delay, and
escalated 24 hours later when nobody acknowledged it. The same probe runs for each way a
laboratory has in: the lab API, a FHIR Bundle to the FHIR endpoint and an HL7 v2 ORU^R01 through
the real MLLP listener. The clock is fixed (time-machine); the API, the FHIR endpoint, the MLLP
listener, the outbox and the mail backend are the real ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from imports import fhir_codes
from monitoring import notifications
from monitoring.escalation import alerts_escalate
from monitoring.models import ESCALATION_OTHERS, HIGH, Alert, AlertEscalation, Notification
from monitoring.worklist import worklist
from tests.conftest import token_client
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory
from tests.imports.hl7_helpers import ThreadListener, ack_code, hl7_lab_feed, obx, oru, send

INFUSED = date(2025, 3, 1)
ARRIVES = datetime.combine(INFUSED + timedelta(days=53), time(10), tzinfo=BERLIN)
STUDY_SYSTEM = "urn:oid:1.2.276.0.99.2"
CD19 = {"system": "urn:oid:1.2.276.0.99.1", "code": "BZ19-ABS", "display": "B cells CD19+ abs"}

# send(day, count): the count (None: undetectable) collected on `day` at 08:00 in Berlin, sent
# now; it asserts that the way in accepted it and returns how many alerts were news (None: the
# way's answer does not count them: an HL7 ACK).
Send = Callable[[int, int | None], int | None]


@pytest.fixture(autouse=True)
def sixty_days(settings):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default (the suite's conftest lifts it)


@pytest.fixture
def colleague(center, roles):
    user = UserFactory(username="colleague", center=center)
    user.groups.add(roles["clinician"])
    return user


@pytest.fixture
def lab_feed(center):
    """The laboratory's interface: may post results for the center, is nobody's clinician."""
    user = UserFactory(username="lab-feed", center=center)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_labresult"]))
    return token_client(user)


def collected(day: int) -> datetime:
    return datetime.combine(INFUSED + timedelta(days=day), time(8), tzinfo=BERLIN)


def via_api(request) -> Send:
    feed = request.getfixturevalue("lab_feed")

    def sent(day: int, count: int | None) -> int | None:
        value = {"qualifier": "undetectable"} if count is None else {"value": str(count)}
        sample = {"study_id": "CT-PROBE", "collected_at": collected(day).isoformat()}
        values = [{"analyte": "pb_bcell_abs", "unit": "cells/uL", **value}]
        answer = feed.post(
            "/api/v1/lab-results/", {"samples": [{**sample, "values": values}]}, "json"
        )
        assert answer.status_code == 201, answer.json()
        return answer.json()["alerts"]["news"]

    return sent


def via_fhir(request) -> Send:
    """A collection Bundle: the patient by the configured study-ID system, the center's own
    PB B-cell code (the local mapping file), undetectable as the qualifier code."""
    feed = request.getfixturevalue("lab_feed")
    settings, tmp_path = request.getfixturevalue("settings"), request.getfixturevalue("tmp_path")
    mapping = tmp_path / "local.json"
    mapping.write_text(json.dumps({"codes": [{**CD19, "analyte": "pb_bcell_abs"}]}))
    settings.FHIR_LOCAL_MAPPING_FILE = str(mapping)
    settings.FHIR_STUDY_ID_SYSTEM = STUDY_SYSTEM
    fhir_codes.mapping.cache_clear()
    request.addfinalizer(fhir_codes.mapping.cache_clear)

    def sent(day: int, count: int | None) -> int | None:
        if count is None:
            value = {
                "valueCodeableConcept": {
                    "coding": [{"system": fhir_codes.QUALIFIER_SYSTEM, "code": "undetectable"}]
                }
            }
        else:
            value = {"valueQuantity": {"value": count, "system": fhir_codes.UCUM, "code": "/uL"}}
        result = Observation(
            status="final",
            code={"coding": [CD19]},
            subject={"reference": "urn:uuid:patient"},
            effectiveDateTime=collected(day).isoformat(),
            **value,
        )
        person = FhirPatient(identifier=[{"system": STUDY_SYSTEM, "value": "CT-PROBE"}])
        body = Bundle(
            type="collection",
            entry=[
                BundleEntry(fullUrl="urn:uuid:patient", resource=person),
                BundleEntry(fullUrl="urn:uuid:result", resource=result),
            ],
        ).model_dump_json()
        answer = feed.post("/api/v1/fhir/", body, content_type="application/fhir+json")
        assert answer.status_code == 201, answer.json()
        [summary] = [
            issue.diagnostics
            for issue in OperationOutcome.model_validate(answer.json()).issue
            if issue.diagnostics.startswith("Stored ")
        ]
        return int(re.search(r"Alerts: (\d+) new", summary).group(1))

    return sent


def via_hl7(request) -> Send:
    """An ORU^R01 through the real MLLP listener; the feed names the patient by MRN."""
    center = request.getfixturevalue("center")
    hl7_lab_feed(center)
    listener = ThreadListener()
    request.addfinalizer(listener.stop)
    messages = iter(range(1, 100))

    def sent(day: int, count: int | None) -> int | None:
        value = "0" if count is None else str(count)  # HL7 has no "undetectable": 0 cells/uL
        when = collected(day).strftime("%Y%m%d%H%M%z")
        message = oru(f"PROBE-{next(messages)}", obx(1, value=value, time=when))
        ack = send(listener.address, message)
        assert ack_code(ack) == "AA", ack
        return None

    return sent


WAYS_IN = {"api": via_api, "fhir": via_fhir, "hl7": via_hl7}


@pytest.fixture(params=list(WAYS_IN))
def lab(request, center) -> Send:
    return WAYS_IN[request.param](request)


def test_a_late_result_for_a_patient_without_hematologist_reaches_the_center_and_escalates(
    lab, center, clinician, colleague, client, mailoutbox, django_capture_on_commit_callbacks
):
    patient = PatientFactory(center=center, study_id="CT-PROBE", mrn="4711")  # nobody's patient
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    with time_machine.travel(ARRIVES - timedelta(days=46), tick=False):  # day 7, 10:00
        lab(7, None)

    with (
        time_machine.travel(ARRIVES, tick=False),
        django_capture_on_commit_callbacks(execute=False),
    ):
        news = lab(45, 20)
    assert news is None or news >= 1

    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    assert (alert.severity, alert.historical, alert.late_days) == (HIGH, False, 8)

    # On the center's worklist, saying that nobody is responsible and how late the result came.
    with time_machine.travel(ARRIVES + timedelta(hours=1), tick=False):
        assert alert in worklist(colleague).high_alerts
        client.force_login(colleague)
        page = client.get("/").content.decode()
    assert "CT-PROBE" in page and "no responsible clinician" in page
    assert "collected 8 days before it arrived" in page

    # E-mailed to the center's clinicians (the laboratory is nobody's clinician), naming the delay.
    first = Notification.objects.filter(alert=alert, escalation_step=0)
    assert sorted(first.values_list("recipient__username", flat=True)) == [
        "clinician",
        "colleague",
    ]
    notifications.notifications_send_pending()
    assert sorted(m.to[0] for m in mailoutbox) == ["clinician@example.org", "colleague@example.org"]
    assert all("The result was collected 8 days before it arrived." in m.body for m in mailoutbox)
    assert all("no responsible clinician" in m.body for m in mailoutbox)

    # Nobody acknowledged it: 24 hours later it is sent again.
    raised = alert.raised_at
    assert alerts_escalate(now=raised + timedelta(hours=24))["steps"] == 0
    assert alerts_escalate(now=raised + timedelta(hours=24, seconds=1))["steps"] == 1
    assert AlertEscalation.objects.get(alert=alert).step == ESCALATION_OTHERS
    mailoutbox.clear()
    notifications.notifications_send_pending()
    assert len(mailoutbox) == 2
    assert all("Sent again: nobody has acknowledged" in m.body for m in mailoutbox)


def test_a_fhir_bundle_tagged_as_history_raises_history_not_news(
    request, center, lab_feed, settings, tmp_path
):
    """CLINICAL.md §4: a sender declares a backfill explicitly; for FHIR that is the Bundle's
    meta.tag urn:carttrack:import|history. The same regeneration untagged is news (above)."""
    mapping = tmp_path / "local.json"
    mapping.write_text(json.dumps({"codes": [{**CD19, "analyte": "pb_bcell_abs"}]}))
    settings.FHIR_LOCAL_MAPPING_FILE = str(mapping)
    settings.FHIR_STUDY_ID_SYSTEM = STUDY_SYSTEM
    fhir_codes.mapping.cache_clear()
    request.addfinalizer(fhir_codes.mapping.cache_clear)
    patient = PatientFactory(center=center, study_id="CT-PAST", mrn="4712")
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    person = FhirPatient(identifier=[{"system": STUDY_SYSTEM, "value": "CT-PAST"}])

    def observation(day, value):
        return Observation(
            status="final",
            code={"coding": [CD19]},
            subject={"reference": "urn:uuid:patient"},
            effectiveDateTime=collected(day).isoformat(),
            **value,
        )

    aplasia = {
        "valueCodeableConcept": {
            "coding": [{"system": fhir_codes.QUALIFIER_SYSTEM, "code": "undetectable"}]
        }
    }
    regenerated = {"valueQuantity": {"value": 20, "system": fhir_codes.UCUM, "code": "/uL"}}
    body = Bundle(
        type="collection",
        meta={"tag": [{"system": fhir_codes.HISTORY_TAG[0], "code": fhir_codes.HISTORY_TAG[1]}]},
        entry=[
            BundleEntry(fullUrl="urn:uuid:patient", resource=person),
            BundleEntry(fullUrl="urn:uuid:a", resource=observation(7, aplasia)),
            BundleEntry(fullUrl="urn:uuid:b", resource=observation(21, regenerated)),
        ],
    ).model_dump_json()
    with time_machine.travel(collected(22), tick=False):
        answer = lab_feed.post("/api/v1/fhir/", body, content_type="application/fhir+json")
    assert answer.status_code == 201, answer.json()
    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    assert alert.historical
    assert not Notification.objects.filter(alert=alert).exists()
