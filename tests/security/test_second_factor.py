"""The optional TOTP second factor (django-otp), enforceable per role (OTP_REQUIRED_GROUPS)."""

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests"


def _code(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def _sign_in(client, username="clinician"):
    return client.post("/login/", {"username": username, "password": PASSWORD})


def test_without_a_device_or_requirement_the_password_suffices(client, clinician):
    _sign_in(client)
    assert client.get("/patients/").status_code == 200


def test_a_required_role_must_set_up_a_device_before_anything_else(client, clinician, settings):
    settings.OTP_REQUIRED_GROUPS = ["Clinicians"]
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp slows retries after a wrong code
    _sign_in(client)
    response = client.get("/patients/")
    assert response.status_code == 302 and response["Location"].startswith(
        "/account/two-factor/setup/"
    )
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'data-testid="otp-secret"' in page.content.decode()
    device = TOTPDevice.objects.get(user=clinician, confirmed=False)
    assert client.post("/account/two-factor/setup/", {"token": "000000"}).status_code == 200
    response = client.post(
        "/account/two-factor/setup/", {"token": _code(device), "next": "/patients/"}
    )
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert client.get("/patients/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed


def test_a_user_with_a_device_enters_its_code_at_each_sign_in(client, clinician):
    device = TOTPDevice.objects.create(user=clinician, name="phone", confirmed=True)
    _sign_in(client)
    response = client.get("/alerts/")
    assert response["Location"].startswith("/account/two-factor/?next=/alerts/")
    assert client.post("/account/two-factor/", {"token": "123"}).status_code == 200
    assert client.get("/alerts/").status_code == 302  # still owed
    response = client.post("/account/two-factor/", {"token": _code(device), "next": "/alerts/"})
    assert response["Location"] == "/alerts/"
    assert client.get("/alerts/").status_code == 200


def test_registry_staff_are_not_required_when_only_clinicians_are(client, registry, settings):
    settings.OTP_REQUIRED_GROUPS = ["Clinicians"]
    _sign_in(client, "registry")
    assert client.get("/patients/").status_code == 200
