"""A recipient for every alert (CLINICAL.md section 4): one recipient policy.

A patient an import creates gets the importing clinician as responsible, or for a system sender
the center's intake team; a high alert of a patient with no responsible clinician goes to the
center's clinicians who receive e-mail; a center with nobody to notify is shown to the admin.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core import checks

from imports.services import import_scope, records_import
from monitoring.models import CenterAlerting, Notification
from monitoring.recipients import centers_without_recipients
from patients.models import Patient
from tests.factories import BERLIN, UserFactory
from tests.imports.test_import_path import course

NOW = datetime(2025, 4, 5, 10, tzinfo=BERLIN)  # day 33 of the course: its alert is news


@pytest.fixture
def lab_feed(center):
    user = UserFactory(username="lab-feed", center=center)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_labresult", "add_patient"])
    )
    return user


def run_import(user, study_id="CT-NEW"):
    with time_machine.travel(NOW, tick=False):
        outcome = records_import(batch=course(study_id), scope=import_scope(user))
    assert outcome.ok, outcome.problems
    return Patient.objects.get(study_id=study_id)


def recipients(patient) -> list[str]:
    return sorted(
        Notification.objects.filter(
            alert__patient=patient, alert__rule="early_regeneration"
        ).values_list("recipient__username", flat=True)
    )


def test_a_patient_an_import_creates_gets_the_importing_clinician(clinician):
    patient = run_import(clinician)
    assert list(patient.hematologists.all()) == [clinician]
    assert recipients(patient) == ["clinician"]


def test_a_system_senders_patients_get_the_centers_intake_team(center, clinician, lab_feed, roles):
    nurse = UserFactory(username="intake", center=center)
    nurse.groups.add(roles["clinician"])
    CenterAlerting.objects.create(center=center).intake_team.add(nurse)

    patient = run_import(lab_feed)

    assert list(patient.hematologists.all()) == [nurse]
    assert recipients(patient) == ["intake"]


def test_without_an_intake_team_the_high_alert_goes_to_the_centers_clinicians(
    center, clinician, lab_feed, roles
):
    colleague = UserFactory(username="colleague", center=center)
    colleague.groups.add(roles["clinician"])
    UserFactory(username="no-mail", center=center, email="").groups.add(roles["clinician"])
    UserFactory(username="elsewhere", center=None).groups.add(roles["clinician"])

    patient = run_import(lab_feed)

    assert not patient.hematologists.exists()
    assert recipients(patient) == ["clinician", "colleague"]  # with an address, of this center
    # Lower severities are not broadcast: only a high alert goes to the whole center.
    assert not Notification.objects.filter(alert__patient=patient, alert__severity="info")


def test_a_center_with_nobody_to_notify_is_a_warning_for_the_admin(center, client, roles):
    admin = UserFactory(username="root", center=None)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    assert centers_without_recipients() == [center]
    found = [m for m in checks.run_checks(databases=["default"]) if m.id == "monitoring.W001"]
    assert [m.msg.split(":")[0] for m in found] == ["Center alpha"]

    client.force_login(admin)
    page = client.get("/admin/monitoring/centeralerting/", follow=True).content.decode()
    assert "Center Alpha: nobody to notify" in page
    page = client.get("/admin/monitoring/alert/").content.decode()
    assert "Center Alpha: nobody to notify" in page

    doctor = UserFactory(username="doctor", center=center)
    doctor.groups.add(roles["clinician"])
    assert centers_without_recipients() == []
    page = client.get("/admin/monitoring/alert/").content.decode()
    assert "nobody to notify" not in page
