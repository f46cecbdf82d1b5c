"""The admin is a door too: typed numbers through the one parser, times in the patient's
center's zone, soft limits confirmed, hard limits refused; plain messages, nothing half-saved."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from patients import units
from patients.models import LabResult
from tests.factories import PatientFactory

pytestmark = pytest.mark.usefixtures("frozen_now")
URL = "/admin/patients/labresult/add/"


@pytest.fixture
def shanghai_patient(other_center):
    return PatientFactory(center=other_center, study_id="SH-0009")


def post(admin_client, patient, value, **extra):
    data = {
        "patient": patient.pk,
        "analyte": units.ALC,
        "specimen": "",
        "collected_at_0": "2025-03-15",
        "collected_at_1": "23:30:00",
        "value": value,
        "unit": units.GIGA_PER_L,
        "qualifier": "",
        "method": "",
        **extra,
    }
    return admin_client.post(URL, data)


def test_a_decimal_comma_and_a_naive_time_in_the_centers_zone(admin_client, shanghai_patient):
    response = post(admin_client, shanghai_patient, "0,9")
    assert response.status_code == 302, response.context["adminform"].form.errors
    (alc,) = LabResult.objects.all()
    assert alc.value == Decimal("0.9")
    assert alc.collected_at == datetime(2025, 3, 15, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    # Shown again in the center's zone, so saving it unchanged does not move it.
    page = admin_client.get(f"/admin/patients/labresult/{alc.pk}/change/").content.decode()
    assert 'value="23:30:00"' in page


def test_ambiguous_hard_and_soft_values_in_the_admin(admin_client, shanghai_patient):
    ambiguous = post(admin_client, shanghai_patient, "1,234")
    assert "ambiguous" in str(ambiguous.context["adminform"].form.errors["value"])
    impossible = post(admin_client, shanghai_patient, "4321", plausibility_confirmed="on")
    assert "impossible" in str(impossible.context["adminform"].form.errors["value"])
    unusual = post(admin_client, shanghai_patient, "60")
    assert "unusually high" in str(unusual.context["adminform"].form.errors["value"])
    assert not LabResult.objects.exists()
    confirmed = post(admin_client, shanghai_patient, "60", plausibility_confirmed="on")
    assert confirmed.status_code == 302
    alc = LabResult.objects.get()
    assert alc.plausibility_confirmed and alc.plausibility_confirmed_by.username == "admin"
