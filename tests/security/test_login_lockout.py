"""Lockout by username AND address (django-axes), with the client address read through a
trusted proxy (TRUSTED_PROXY_COUNT): a stranger cannot lock a clinician out from elsewhere."""

import pytest

PASSWORD = "pw-for-tests"
PROXY = "10.0.0.1"  # every request reaches the app from the reverse proxy

pytestmark = pytest.mark.django_db


@pytest.fixture
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1


def _login(client, username, password, client_address, forged=""):
    """The proxy appends the address it saw to whatever the client sent."""
    return client.post(
        "/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{forged}, {client_address}" if forged else client_address,
    )


def test_a_stranger_locks_only_himself_out_not_the_clinician(behind_one_proxy, client, clinician):
    for _ in range(5):
        _login(client, "clinician", "guess", "203.0.113.66")  # the stranger's address
    locked = _login(client, "clinician", PASSWORD, "203.0.113.66")
    assert locked.status_code in (403, 429) and "_auth_user_id" not in client.session

    # The clinician, at her own workstation, behind the same proxy, signs in.
    response = _login(client, "clinician", PASSWORD, "192.0.2.10")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(clinician.pk)


def test_another_user_at_the_strangers_address_is_not_locked(behind_one_proxy, client, stranger):
    for _ in range(5):
        _login(client, "clinician", "guess", "203.0.113.66")
    assert _login(client, "stranger", PASSWORD, "203.0.113.66").status_code == 302


def test_without_a_trusted_proxy_a_forged_header_changes_nothing(client, clinician):
    """TRUSTED_PROXY_COUNT=0 (the default): X-Forwarded-For is ignored, so rotating it does not
    give an attacker fresh attempts."""
    for n in range(5):
        _login(client, "clinician", "guess", f"198.51.100.{n}")
    assert _login(client, "clinician", PASSWORD, "192.0.2.10").status_code in (403, 429)


def test_behind_the_proxy_a_forged_header_does_not_give_fresh_attempts(
    behind_one_proxy, client, clinician
):
    for n in range(5):
        _login(client, "clinician", "guess", "203.0.113.66", forged=f"198.51.100.{n}")
    assert _login(client, "clinician", PASSWORD, "203.0.113.66").status_code in (403, 429)
    assert _login(client, "clinician", PASSWORD, "192.0.2.10").status_code == 302
