"""A user opts out of e-mail for lower severities on the preferences page."""

import pytest

from patients.models import ClinicianProfile


@pytest.mark.django_db
def test_preferences_page_saves_the_opt_out(clinician_client, clinician):
    assert clinician.profile.email_low_severity is True
    page = clinician_client.get("/alerts/preferences/")
    assert page.status_code == 200
    assert "High-severity alerts are always e-mailed" in page.content.decode()
    response = clinician_client.post("/alerts/preferences/", {})  # box unticked
    assert response.status_code == 302
    assert ClinicianProfile.objects.get(user=clinician).email_low_severity is False
    clinician_client.post("/alerts/preferences/", {"email_low_severity": "on"})
    assert ClinicianProfile.objects.get(user=clinician).email_low_severity is True


@pytest.mark.django_db
def test_preferences_need_login(client):
    response = client.get("/alerts/preferences/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
