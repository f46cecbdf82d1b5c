"""Alerts kept consistent with the clinical data, through the services a clinician's save uses.

Every change goes through `patients.services` (lock the patient, validate, save, `alerts_sync`),
so these tests record and correct data the way the pages do and look at the alerts that follow.
Days are counted from the infusion on 1 March 2025; the clock is frozen on 3 November 2025, long
after the early-regeneration window, so the time-based count-due reminder stays out of the way.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from monitoring.models import (
    ACKNOWLEDGED,
    HIGH,
    INFO,
    OPEN,
    WITHDRAWN,
    Alert,
    AlertEvent,
    Notification,
)
from monitoring.params import RuleParams
from monitoring.services import alert_acknowledge
from patients.models import ClinicalEvent, Infusion, LabResult
from patients.services import (
    LabValue,
    clinical_record_delete,
    clinical_record_save,
    lab_results_record,
)
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory

INFUSED = date(2025, 3, 1)
# A distinctive count, so that a test can tell it apart from every other number on a page.
REGENERATION_COUNT = Decimal("7.31")

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def patient(center, clinician):
    patient = PatientFactory(
        center=center, study_id="CT-0101", mrn="MRN-445566", full_name="Erika Mustermann"
    )
    patient.hematologists.add(clinician)
    return patient


@pytest.fixture
def infusion(patient):
    return InfusionFactory(patient=patient, infusion_date=INFUSED, infusion_number=1)


def bcell_count(
    patient,
    day: int,
    value: Decimal | None = None,
    *,
    user=None,
    infused: date = INFUSED,
    hour: int = 8,
) -> LabResult:
    """Record one PB B-cell count on `day` after `infused`; no value means undetectable."""
    collected_at = datetime.combine(infused + timedelta(days=day), time(hour), tzinfo=BERLIN)
    entry = LabValue(PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE)
    (result,) = lab_results_record(
        patient=patient, collected_at=collected_at, values=[entry], entered_by=user
    )
    return result


def early_alerts(patient):
    return Alert.objects.filter(patient=patient, rule="early_regeneration")


def transitions(alert) -> list[tuple[str, str]]:
    return list(AlertEvent.objects.filter(alert=alert).values_list("old_status", "new_status"))


@pytest.fixture
def early_regenerator(patient, infusion, clinician):
    """Aplasia documented on day 7, B cells back on day 30: the study's relapse signal."""
    bcell_count(patient, 7, user=clinician)
    regeneration = bcell_count(patient, 30, REGENERATION_COUNT, user=clinician)
    return patient, regeneration


def test_early_regeneration_raises_one_high_alert_with_its_basis(early_regenerator):
    patient, regeneration = early_regenerator

    (alert,) = Alert.objects.filter(patient=patient)  # nothing else fires for this course
    assert (alert.rule, alert.severity, alert.status) == ("early_regeneration", HIGH, OPEN)
    assert alert.infusion.infusion_number == 1
    assert alert.day == 30
    evidence = [(e["role"], e["day"], e["value"], e["qualifier"]) for e in alert.evidence]
    assert evidence == [("aplasia", 7, None, UNDETECTABLE), ("regeneration", 30, "7.31", "")]
    assert alert.evidence[1]["result_id"] == regeneration.pk
    assert alert.params == RuleParams().to_dict()
    assert alert.params["window_days"] == 45 and alert.params["bcell_threshold"] == "0"
    assert alert.rule_version == "default-1"
    assert alert.details["regeneration_day"] == 30 and alert.details["aplasia_day"] == 7
    assert "anti-leukemic" in alert.details["recommendation"]


def test_raising_an_alert_records_its_creation_as_new_to_open(early_regenerator):
    patient, _ = early_regenerator
    alert = early_alerts(patient).get()

    # The history reads "new → open" (an empty old status), as AlertEvent.__str__ expects.
    assert transitions(alert) == [("", OPEN)]


def test_a_later_detectable_count_keeps_the_same_alert_and_its_status(early_regenerator, clinician):
    patient, _ = early_regenerator
    alert = early_alerts(patient).get()
    alert_acknowledge(alert=alert, user=clinician)

    bcell_count(patient, 37, Decimal("25"), user=clinician)

    (kept,) = early_alerts(patient)
    assert kept.pk == alert.pk
    assert kept.status == ACKNOWLEDGED
    assert kept.day == 30  # regeneration is the first detectable count after aplasia
    assert transitions(kept)[1:] == [(OPEN, ACKNOWLEDGED)]
    assert Notification.objects.filter(alert=kept).count() == 1  # no second e-mail


def test_correcting_the_triggering_count_to_undetectable_withdraws_the_alert(
    early_regenerator, clinician
):
    patient, regeneration = early_regenerator
    alert = early_alerts(patient).get()

    regeneration.value, regeneration.qualifier = None, UNDETECTABLE
    clinical_record_save(instance=regeneration, user=clinician)

    alert.refresh_from_db()
    assert alert.status == WITHDRAWN
    assert alert.withdrawn_at is not None
    assert "no longer holds" in alert.withdrawn_reason
    assert transitions(alert)[1:] == [(OPEN, WITHDRAWN)]
    assert AlertEvent.objects.get(alert=alert, new_status=WITHDRAWN).reason == (
        alert.withdrawn_reason
    )
    assert early_alerts(patient).count() == 1  # kept, never deleted


def test_deleting_the_triggering_count_withdraws_naming_the_deleted_result(
    early_regenerator, clinician
):
    patient, regeneration = early_regenerator

    clinical_record_delete(instance=regeneration, user=clinician)

    alert = early_alerts(patient).get()
    assert alert.status == WITHDRAWN
    assert "deleted" in alert.withdrawn_reason
    assert "day 30" in alert.withdrawn_reason
    assert transitions(alert)[-1] == (OPEN, WITHDRAWN)


def test_correcting_the_count_back_reopens_the_same_alert(early_regenerator, clinician):
    patient, regeneration = early_regenerator
    alert = early_alerts(patient).get()
    regeneration.value, regeneration.qualifier = None, UNDETECTABLE
    clinical_record_save(instance=regeneration, user=clinician)

    regeneration.value, regeneration.qualifier = REGENERATION_COUNT, ""
    clinical_record_save(instance=regeneration, user=clinician)

    (reopened,) = early_alerts(patient)
    assert reopened.pk == alert.pk
    assert reopened.status == OPEN
    assert (reopened.withdrawn_at, reopened.withdrawn_reason) == (None, "")
    assert transitions(reopened)[1:] == [(OPEN, WITHDRAWN), (WITHDRAWN, OPEN)]


def test_fixing_the_infusion_date_turns_early_regeneration_into_late_recovery(
    early_regenerator, clinician
):
    patient, _ = early_regenerator
    early = early_alerts(patient).get()

    # The infusion was really on 13 February: the count of 31 March falls on day 46.
    infusion = Infusion.objects.get(patient=patient)
    infusion.infusion_date = date(2025, 2, 13)
    clinical_record_save(instance=infusion, user=clinician)

    early.refresh_from_db()
    assert early.status == WITHDRAWN
    late = Alert.objects.get(patient=patient, rule="late_recovery")
    assert (late.severity, late.status, late.day) == (INFO, OPEN, 46)
    assert Alert.objects.filter(patient=patient, status=OPEN).count() == 1


def test_relapse_recorded_after_the_alert_keeps_it(early_regenerator, clinician):
    patient, _ = early_regenerator
    alert = early_alerts(patient).get()

    clinical_record_save(
        instance=ClinicalEvent(
            patient=patient, kind="relapse", event_date=date(2025, 4, 20), relapse_cd19="positive"
        ),
        user=clinician,
    )

    alert.refresh_from_db()
    assert alert.status == OPEN  # the finding made before the relapse stands
    assert AlertEvent.objects.filter(alert=alert).count() == 1


def test_detectable_count_after_a_relapse_raises_nothing(patient, infusion, clinician):
    bcell_count(patient, 7, user=clinician)
    clinical_record_save(
        instance=ClinicalEvent(patient=patient, kind="relapse", event_date=date(2025, 3, 20)),
        user=clinician,
    )

    bcell_count(patient, 30, REGENERATION_COUNT, user=clinician)

    assert not Alert.objects.filter(patient=patient).exists()
    assert not Notification.objects.exists()


def test_second_infusion_opens_its_own_window(early_regenerator, clinician):
    patient, _ = early_regenerator
    first = early_alerts(patient).get()
    # Relapse on day 50, a second CAR-T infusion on 1 May: a new day 0.
    clinical_record_save(
        instance=ClinicalEvent(patient=patient, kind="relapse", event_date=date(2025, 4, 20)),
        user=clinician,
    )
    second_infusion = clinical_record_save(
        instance=Infusion(
            patient=patient, infusion_date=date(2025, 5, 1), infusion_number=2, product="CD19 CAR-T"
        ),
        user=clinician,
    )

    bcell_count(patient, 7, user=clinician, infused=date(2025, 5, 1))
    bcell_count(patient, 20, Decimal("3"), user=clinician, infused=date(2025, 5, 1))

    alerts = {a.infusion_id: a for a in early_alerts(patient)}
    assert set(alerts) == {first.infusion_id, second_infusion.pk}
    second = alerts[second_infusion.pk]
    assert (second.infusion_number, second.day, second.status) == (2, 20, OPEN)
    assert [e["day"] for e in second.evidence] == [7, 20]
    assert alerts[first.infusion_id].status == OPEN  # the first window's finding stands


def test_high_alert_notifies_every_responsible_hematologist(patient, infusion, clinician, center):
    colleague = UserFactory(username="colleague", center=center)
    colleague.profile.email_low_severity = False  # opted out of low severities, not of high
    colleague.profile.save()
    patient.hematologists.add(colleague)
    UserFactory(username="bystander", center=center)  # same center, not responsible

    bcell_count(patient, 7, user=clinician)
    assert not Notification.objects.exists()
    bcell_count(patient, 30, REGENERATION_COUNT, user=clinician)

    alert = early_alerts(patient).get()
    rows = Notification.objects.filter(alert=alert)
    assert sorted(rows.values_list("recipient__username", flat=True)) == ["clinician", "colleague"]
    assert set(rows.values_list("status", "channel", "attempts")) == {("pending", "email", 0)}


def test_low_severity_alert_skips_hematologists_who_opted_out(patient, infusion, clinician, center):
    colleague = UserFactory(username="colleague", center=center)
    colleague.profile.email_low_severity = False
    colleague.profile.save()
    patient.hematologists.add(colleague)

    bcell_count(patient, 7, user=clinician)
    bcell_count(patient, 50, REGENERATION_COUNT, user=clinician)  # late recovery: info

    late = Alert.objects.get(patient=patient)
    assert (late.rule, late.severity) == ("late_recovery", INFO)
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["clinician"]


def test_alert_and_notification_are_committed_with_the_lab_or_not_at_all(
    patient, infusion, clinician, django_capture_on_commit_callbacks
):
    bcell_count(patient, 7, user=clinician)

    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                bcell_count(patient, 30, REGENERATION_COUNT, user=clinician)
                assert early_alerts(patient).count() == 1
                assert Notification.objects.count() == 1
                raise RuntimeError("the surrounding transaction fails after the save")

    assert not Alert.objects.exists()
    assert not Notification.objects.exists()
    assert not LabResult.objects.filter(value__isnull=False).exists()
    assert callbacks == []  # nothing is enqueued for a rolled-back alert


def test_sending_is_enqueued_only_when_an_alert_opens(
    patient, infusion, clinician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as quiet:
        bcell_count(patient, 7, user=clinician)
    with django_capture_on_commit_callbacks() as raising:
        bcell_count(patient, 30, REGENERATION_COUNT, user=clinician)

    assert quiet == []
    assert len(raising) == 1
