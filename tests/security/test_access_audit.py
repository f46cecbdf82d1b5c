"""Every read of a patient page, an alert, an export and the API is a row (who, what, when,
from where); the access log and the change history cannot be edited or deleted from the
application or the admin; the clinician profile has history; snapshots cannot be deleted."""

import pytest

from analytics.services import snapshot_compute
from audit.models import AccessEvent
from patients.models import ClinicianProfile
from tests.conftest import token_client
from tests.factories import InfusionFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(center, clinician):
    patient = PatientFactory(center=center, study_id="CT-0901")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient)
    return patient


def _events():
    return list(AccessEvent.objects.order_by("pk").values_list("username", "kind", "target"))


def test_each_read_of_patient_data_is_recorded_with_who_what_and_where(
    clinician_client, clinician, patient, frozen_now
):
    clinician_client.get("/patients/CT-0901/", REMOTE_ADDR="192.0.2.44")
    clinician_client.get("/patients/CT-0901/history/")
    clinician_client.get("/dashboard/export.csv?center=alpha")
    clinician_client.get("/patients/")  # a list, not a record: not an access event
    clinician_client.get("/patients/CT-9999/")  # 404: nothing was read
    assert _events() == [
        ("clinician", "patient", "CT-0901"),
        ("clinician", "patient", "CT-0901"),
        ("clinician", "export", "center=alpha"),
    ]
    first = AccessEvent.objects.order_by("pk").first()
    assert (first.user, first.address, first.path) == (
        clinician,
        "192.0.2.44",
        "/patients/CT-0901/",
    )
    assert first.at is not None


def test_record_histories_rule_exports_and_fhir_reads_are_recorded(
    clinician_client, clinician, registry, patient, frozen_now
):
    """Every other read of patient data: one record's history, the rule-performance exports
    (per alert and per sample, with study IDs; registry staff) and a patient's results
    through FHIR."""
    from django.test import Client

    infusion = patient.infusions.get()
    staff = Client()
    staff.force_login(registry)
    reads = [
        (clinician_client, f"/patients/CT-0901/infusion/{infusion.pk}/history/"),
        (staff, "/dashboard/rules/alerts.csv?center=alpha"),
        (staff, "/dashboard/rules/bcells.csv?center=alpha"),
        (token_client(clinician), "/api/v1/fhir/patients/CT-0901/"),
    ]
    for client, url in reads:
        assert client.get(url).status_code == 200, url
    assert _events() == [
        ("clinician", "patient", "CT-0901"),
        ("registry", "export", "center=alpha"),
        ("registry", "export", "center=alpha"),
        ("clinician", "api", "CT-0901"),
    ]


def test_alert_and_api_reads_are_recorded(clinician_client, clinician, center, frozen_now):
    from tests.monitoring.test_inbox import stored_alert

    alert = stored_alert("CT-0902", center=center)
    alert.patient.hematologists.add(clinician)
    assert clinician_client.get(f"/alerts/{alert.pk}/").status_code == 200
    api = token_client(clinician)
    assert api.get("/api/v1/alerts/").status_code == 200
    assert _events() == [("clinician", "alert", f"#{alert.pk}"), ("clinician", "api", "")]


def test_the_access_log_cannot_be_changed_or_deleted(clinician_client, admin_client, patient):
    clinician_client.get("/patients/CT-0901/")
    event = AccessEvent.objects.get()
    with pytest.raises(PermissionError):
        event.delete()
    event.target = "forged"
    with pytest.raises(PermissionError):
        event.save()
    assert admin_client.get("/admin/audit/accessevent/?q=CT-0901").status_code == 200
    assert "CT-0901" in admin_client.get("/admin/audit/accessevent/?q=CT-0901").content.decode()
    base = f"/admin/audit/accessevent/{event.pk}"
    assert admin_client.get(f"{base}/delete/").status_code in (302, 403)
    assert admin_client.post(f"{base}/change/", {"target": "x"}).status_code == 403
    assert admin_client.get("/admin/audit/accessevent/add/").status_code == 403
    assert AccessEvent.objects.filter(target="CT-0901").count() >= 1


def test_history_has_no_revert_and_the_profile_has_history(admin_client, clinician, other_center):
    profile = ClinicianProfile.objects.get(user=clinician)
    profile.center = other_center
    profile.save()
    assert [h.center_id for h in profile.history.order_by("history_id")][-1] == other_center.pk
    page = admin_client.get(f"/admin/patients/clinicianprofile/{profile.pk}/history/")
    assert page.status_code == 200
    old = profile.history.order_by("history_id").first()
    revert = admin_client.post(
        f"/admin/patients/clinicianprofile/{profile.pk}/history/{old.history_id}/", {}
    )
    assert (
        revert.status_code in (403, 404)
        or ClinicianProfile.objects.get(pk=profile.pk).center == other_center
    )


def test_snapshots_and_refresh_runs_cannot_be_deleted_in_the_admin(admin_client, patient):
    snapshot = snapshot_compute(options={})
    url = f"/admin/analytics/dashboardsnapshot/{snapshot.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code in (302, 403)
    from analytics.models import DashboardSnapshot

    assert DashboardSnapshot.objects.filter(pk=snapshot.pk).exists()


def test_the_database_refuses_to_change_or_delete_the_access_log(clinician_client, patient):
    from django.db import DatabaseError, connection, transaction

    clinician_client.get("/patients/CT-0901/")
    for statement in (
        "UPDATE audit_accessevent SET target = 'forged'",
        "DELETE FROM audit_accessevent",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    assert list(AccessEvent.objects.values_list("target", flat=True)) == ["CT-0901"]
