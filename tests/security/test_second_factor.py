"""The optional TOTP second factor (django-otp), enforceable per role (OTP_REQUIRED_GROUPS)."""

import re

import pytest
import time_machine
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests"


def _code(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def _codes_shown(page) -> list[str]:
    assert page.status_code == 200
    return re.findall(r"<li><code>([a-z2-7]{4} [a-z2-7]{4})</code></li>", page.content.decode())


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
    # Confirmed: the recovery codes are shown once, then the page the user was going to.
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/recovery-codes/?next=%2Fpatients%2F"
    assert len(_codes_shown(client.get(response["Location"]))) == 10
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


def _confirmed_user_with_codes(client, clinician) -> tuple[TOTPDevice, list[str]]:
    """A clinician who set up the app in the browser and was shown the recovery codes."""
    _sign_in(client)
    client.get("/account/two-factor/setup/")
    device = TOTPDevice.objects.get(user=clinician)
    client.post("/account/two-factor/setup/", {"token": _code(device), "next": "/"})
    codes = _codes_shown(client.get("/account/two-factor/recovery-codes/?next=/"))
    client.post("/logout/")
    return device, codes


def test_recovery_codes_are_shown_once_and_each_signs_in_once(client, clinician, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    _device, codes = _confirmed_user_with_codes(client, clinician)
    assert len(codes) == 10 and len(set(codes)) == 10
    # Printed as "abcd efgh": typed back in capitals, with the space or a hyphen, it works.
    first = codes[0].upper().replace(" ", "-")
    _sign_in(client)
    response = client.post("/account/two-factor/", {"token": first, "next": "/alerts/"})
    assert response["Location"] == "/alerts/"
    page = client.get("/alerts/")
    assert page.status_code == 200 and "9 of them left" in page.content.decode()
    # Shown once: the page now says how many are left, never the codes.
    page = client.get("/account/two-factor/recovery-codes/")
    assert _codes_shown(page) == [] and "<strong>9</strong> unused" in page.content.decode()
    client.post("/logout/")

    _sign_in(client)
    again = client.post("/account/two-factor/", {"token": codes[0]})
    assert again.status_code == 200 and "not valid (or was already used)" in again.content.decode()
    assert client.get("/alerts/").status_code == 302
    assert client.post("/account/two-factor/", {"token": codes[1]}).status_code == 302
    assert client.get("/alerts/").status_code == 200


def test_new_recovery_codes_cancel_the_old_ones(client, clinician, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    _device, old = _confirmed_user_with_codes(client, clinician)
    _sign_in(client)
    # (The app's code of this half-minute was used at setup; TOTP accepts each code once.)
    assert client.post("/account/two-factor/", {"token": old[0]}).status_code == 302
    response = client.post("/account/two-factor/recovery-codes/", {"next": "/patients/"})
    new = _codes_shown(client.get(response["Location"]))
    assert len(new) == 10 and not set(new) & set(old)
    assert StaticToken.objects.filter(device__user=clinician).count() == 10
    client.post("/logout/")
    _sign_in(client)
    assert client.post("/account/two-factor/", {"token": old[2]}).status_code == 200
    assert client.post("/account/two-factor/", {"token": new[2]}).status_code == 302


def test_codes_come_only_with_a_confirmed_app(client, clinician):
    _sign_in(client)
    page = client.get("/account/two-factor/recovery-codes/")
    assert "Set up your authenticator app" in page.content.decode()
    assert client.post("/account/two-factor/recovery-codes/").status_code == 200
    assert not StaticToken.objects.exists()


@pytest.mark.parametrize("typed", ["12345", "1234567", "abcd efg", "abcd-efg1", "' OR 1=1 --", ""])
def test_a_malformed_code_is_refused_with_what_to_type(client, clinician, typed):
    TOTPDevice.objects.create(user=clinician, name="phone", confirmed=True)
    _sign_in(client)
    page = client.post("/account/two-factor/", {"token": typed})
    assert page.status_code == 200
    assert "6 digits your authenticator app shows" in page.content.decode() or (
        typed == "" and "This field is required" in page.content.decode()
    )


def test_after_a_wrong_code_the_page_says_to_wait_not_that_the_next_code_is_wrong(
    client, clinician
):
    device = TOTPDevice.objects.create(user=clinician, name="phone", confirmed=True)
    _sign_in(client)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        wrong = client.post("/account/two-factor/", {"token": "000000"})
        assert "not valid" in wrong.content.decode()
        # Within the second django-otp waits after a wrong code, even the right code is not
        # checked: the page says so instead of calling the code wrong.
        early = client.post("/account/two-factor/", {"token": _code(device)})
        assert "wait a few seconds" in early.content.decode()
        assert client.get("/alerts/").status_code == 302
        clock.shift(2)
        assert client.post("/account/two-factor/", {"token": _code(device)}).status_code == 302
    assert client.get("/alerts/").status_code == 200


def test_a_stolen_password_cannot_add_its_own_authenticator(client, clinician, settings):
    """The owner has an app; someone with only the password opens the set-up page to confirm
    a device of their own: they are sent to the code page, no device is added, the owner's
    recovery codes stand, and nothing else opens."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    TOTPDevice.objects.create(user=clinician, name="owner's phone", confirmed=True)
    owners = StaticDevice.objects.create(user=clinician, name="Recovery codes", confirmed=True)
    owners.token_set.create(token="ownercod")
    _sign_in(client)
    for method in (client.get, client.post):
        response = method("/account/two-factor/setup/", {"token": "123456"})
        assert response.status_code == 302
        assert response["Location"].startswith("/account/two-factor/?next=")
    assert TOTPDevice.objects.filter(user=clinician).count() == 1
    assert list(StaticToken.objects.values_list("token", flat=True)) == ["ownercod"]
    for page in ("/patients/", "/account/password/", "/account/two-factor/recovery-codes/"):
        assert client.get(page)["Location"].startswith("/account/two-factor/?next=")
    assert client.post("/account/two-factor/", {"token": "ownercod"}).status_code == 302
    assert client.get("/patients/").status_code == 200
