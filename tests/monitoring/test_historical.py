"""History is not news: findings first raised from old data are recorded but never e-mailed.

Data that arrives without passing through the services (a bulk load, an import of past courses)
is evaluated later by an import or the sweep. A finding dated more than ALERT_HISTORICAL_AGE_DAYS
[7] before that evaluation is history: the alert exists (patient page, analyses) but nobody is
e-mailed and it stays out of the open worklist and the badge. A clinician's own entry is always
news. The boundary: a finding 7 days old is news, 8 days old is history.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from monitoring import services
from monitoring.models import HIGH, Alert, Notification
from monitoring.selectors import alert_inbox, open_alert_count
from patients.units import UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory

INFUSED = date(2025, 3, 1)
REGENERATION_DAY = 30  # detectable on day 30 (31 March 2025), aplasia on day 7
REGENERATION_DATE = date(2025, 3, 31)


@pytest.fixture
def regenerated_patient(center, clinician):
    """Aplasia on day 7, B cells back on day 30: loaded in bulk, no alert evaluated yet."""
    patient = PatientFactory(center=center, study_id="CT-HIST")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    for on, value in ((date(2025, 3, 8), None), (REGENERATION_DATE, Decimal(25))):
        LabResultFactory(
            patient=patient,
            collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
            value=value,
            qualifier="" if value is not None else UNDETECTABLE,
        )
    assert not Alert.objects.exists()
    return patient


def early_alert(patient) -> Alert:
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def test_sweep_eight_days_after_the_finding_records_it_as_history(
    regenerated_patient, clinician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.sweep(as_of=date(2025, 4, 8))  # 8 days after the regeneration sample

    alert = early_alert(regenerated_patient)
    assert (alert.severity, alert.status, alert.historical) == (HIGH, "open", True)
    assert not Notification.objects.exists()
    assert "historical" in alert.events.get().reason
    assert list(alert_inbox(clinician)) == []
    assert open_alert_count(clinician) == (0, 0)
    assert list(alert_inbox(clinician, status="historical")) == [alert]


def test_sweep_seven_days_after_the_finding_is_still_news(
    regenerated_patient, clinician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.sweep(as_of=date(2025, 4, 7))  # 7 days after: the last day that is news

    alert = early_alert(regenerated_patient)
    assert alert.historical is False
    assert list(Notification.objects.values_list("alert_id", "recipient_id")) == [
        (alert.pk, clinician.pk)
    ]
    assert alert in list(alert_inbox(clinician))
    assert open_alert_count(clinician)[1] == 1


def test_a_clinicians_own_sync_is_news_however_old_the_sample(
    regenerated_patient, clinician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.alerts_sync(patient=regenerated_patient, as_of=date(2025, 9, 1))

    assert early_alert(regenerated_patient).historical is False
    assert Notification.objects.count() == 1


def test_the_historical_age_is_a_setting(
    regenerated_patient, settings, django_capture_on_commit_callbacks
):
    settings.ALERT_HISTORICAL_AGE_DAYS = 30
    with django_capture_on_commit_callbacks(execute=False):
        services.sweep(as_of=date(2025, 4, 20))  # 20 days after: news under a 30-day age

    assert early_alert(regenerated_patient).historical is False
    assert Notification.objects.count() == 1


def test_a_second_sweep_changes_nothing_about_a_historical_alert(
    regenerated_patient, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.sweep(as_of=date(2025, 4, 20))
        before = list(Alert.objects.values_list("pk", "status", "historical", "updated_at"))
        assert services.sweep(as_of=date(2025, 4, 20))["changed"] == 0
    assert list(Alert.objects.values_list("pk", "status", "historical", "updated_at")) == before
    assert not Notification.objects.exists()
