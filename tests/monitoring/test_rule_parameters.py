"""A center's rule parameters: immutable versions, re-evaluation on publish, validation.

Every alert names the parameter version it was evaluated with, so a change stores a new version
and retires the old one instead of editing it, and the center's patients are re-evaluated at once.
Counts: aplasia on day 7, B cells back on day 30 after the infusion of 1 March 2025.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from monitoring.models import OPEN, WITHDRAWN, Alert, RuleParameterSet
from monitoring.services import rule_parameters_publish
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def admin_user(db):
    user = UserFactory(username="admin", center=None)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def regenerator(study_id: str, center, count: Decimal):
    """A patient whose B cells came back on day 30 at `count` cells/µL."""
    patient = PatientFactory(center=center, study_id=study_id)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    for on, value in ((date(2025, 3, 8), None), (date(2025, 3, 31), count)):
        lab_results_record(
            patient=patient,
            collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )
    return patient


def early_alert(patient) -> Alert:
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def test_publishing_stores_numbered_versions_and_retires_the_previous(center, clinician):
    first = rule_parameters_publish(
        center=center,
        user=clinician,
        values={"window_days": 60},
        note="Trial protocol: 60-day window",
    )
    second = rule_parameters_publish(
        center=center, user=clinician, values={"window_days": 45}, note="Back to the study"
    )

    first.refresh_from_db()
    assert (first.version, first.is_current, first.window_days) == (1, False, 60)
    assert (second.version, second.is_current, second.label) == (2, True, "alpha-v2")
    assert second.created_by == clinician
    assert list(RuleParameterSet.objects.filter(center=center, is_current=True)) == [second]


def test_raising_the_threshold_withdraws_an_alert_below_it(center, other_center, clinician):
    low = regenerator("CT-0801", center, Decimal("5"))
    high = regenerator("CT-0802", center, Decimal("50"))
    elsewhere = regenerator("CT-0803", other_center, Decimal("5"))
    assert {early_alert(p).rule_version for p in (low, high, elsewhere)} == {"default-1"}

    rule_parameters_publish(
        center=center,
        user=clinician,
        values={"bcell_threshold": Decimal("10")},
        note="Recovery defined as > 10 cells/µL",
    )

    withdrawn = early_alert(low)
    assert withdrawn.status == WITHDRAWN and withdrawn.withdrawn_reason
    kept = early_alert(high)
    assert (kept.status, kept.rule_version) == (OPEN, "alpha-v1")
    assert kept.params["bcell_threshold"] == "10"
    assert kept.details["parameters"]["version"] == "alpha-v1"
    assert "above 10 cells/µL" in kept.details["definition"]
    # Another center's patients keep the parameters they were evaluated with.
    other = early_alert(elsewhere)
    assert (other.status, other.rule_version) == (OPEN, "default-1")


def test_lowering_the_threshold_back_reopens_the_withdrawn_alert(center, clinician):
    patient = regenerator("CT-0811", center, Decimal("5"))
    alert = early_alert(patient)
    rule_parameters_publish(
        center=center, user=clinician, values={"bcell_threshold": Decimal("10")}
    )

    rule_parameters_publish(center=center, user=clinician, values={"bcell_threshold": 0})

    (reopened,) = Alert.objects.filter(patient=patient, rule="early_regeneration")
    assert reopened.pk == alert.pk
    assert (reopened.status, reopened.rule_version) == (OPEN, "alpha-v2")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"mrd_flow_threshold_pct": Decimal("101")}, "mrd_flow_threshold_pct"),
        ({"bcell_pct_threshold": Decimal("150")}, "bcell_pct_threshold"),
        ({"mrd_ngs_threshold": Decimal("2")}, "mrd_ngs_threshold"),
        ({"bcell_threshold": Decimal("-1")}, "bcell_threshold"),
        ({"window_days": 0}, "window_days"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_stored(center, clinician, values, field):
    current = rule_parameters_publish(center=center, user=clinician, values={})
    patient = regenerator("CT-0821", center, Decimal("5"))

    with pytest.raises(ValidationError) as refused:
        rule_parameters_publish(center=center, user=clinician, values=values)

    assert field in str(refused.value)
    assert list(RuleParameterSet.objects.values_list("version", "is_current")) == [(1, True)]
    current.refresh_from_db()
    assert current.is_current
    alert = early_alert(patient)
    assert (alert.status, alert.rule_version) == (OPEN, "alpha-v1")


def test_admin_change_stores_a_new_version_and_keeps_the_old_row(
    client, admin_user, center, clinician
):
    first = rule_parameters_publish(center=center, user=clinician, values={})
    patient = regenerator("CT-0831", center, Decimal("5"))
    client.force_login(admin_user)
    change_url = reverse("admin:monitoring_ruleparameterset_change", args=[first.pk])
    form = client.get(change_url)
    assert form.status_code == 200

    response = client.post(
        change_url,
        {
            "center": center.pk,
            "window_days": 45,
            "bcell_threshold": "10",
            "bcell_pct_threshold": "",
            "aplasia_by_day": 28,
            "count_due_days": 7,
            "mrd_flow_threshold_pct": "0.01",
            "mrd_ngs_threshold": "0.0001",
            "note": "Recovery above 10 cells/µL",
        },
    )

    assert response.status_code == 302
    first.refresh_from_db()
    assert (first.version, first.is_current, first.bcell_threshold) == (1, False, Decimal(0))
    latest = RuleParameterSet.objects.get(center=center, is_current=True)
    assert (latest.version, latest.bcell_threshold, latest.created_by) == (
        2,
        Decimal(10),
        admin_user,
    )
    assert latest.note == "Recovery above 10 cells/µL"
    assert early_alert(patient).status == WITHDRAWN  # re-evaluated with the new version


def test_admin_shows_invalid_values_beside_the_field_and_stores_nothing(client, admin_user, center):
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:monitoring_ruleparameterset_add"),
        {
            "center": center.pk,
            "window_days": 45,
            "bcell_threshold": "0",
            "bcell_pct_threshold": "",
            "aplasia_by_day": 28,
            "count_due_days": 7,
            "mrd_flow_threshold_pct": "150",
            "mrd_ngs_threshold": "0.0001",
            "note": "",
        },
    )

    assert response.status_code == 200  # the form again, with its errors
    assert "must not exceed 100" in response.content.decode()
    assert not RuleParameterSet.objects.exists()


def test_admin_cannot_delete_a_version(client, admin_user, center, clinician):
    version = rule_parameters_publish(center=center, user=clinician, values={})
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:monitoring_ruleparameterset_delete", args=[version.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert RuleParameterSet.objects.filter(pk=version.pk).exists()


def test_only_one_registry_wide_version_can_be_current(db):
    # The registry-wide default has no center; "one current version per center" must hold for it
    # too, or two concurrent first publishes leave two current defaults and rule_params_for
    # silently picks one of them.
    RuleParameterSet.objects.create(center=None, version=1, is_current=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        RuleParameterSet.objects.create(center=None, version=1, is_current=True)
    assert RuleParameterSet.objects.filter(center=None, is_current=True).count() == 1
