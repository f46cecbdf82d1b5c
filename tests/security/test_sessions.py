"""Idle logoff after SESSION_IDLE_SECONDS [15 min] and an absolute limit [12 h]."""

from datetime import timedelta

import pytest
import time_machine

from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db


def _signed_in(client) -> bool:
    response = client.get("/patients/")
    return response.status_code == 200


def test_idle_logoff_after_fifteen_minutes_not_before(client, clinician, settings):
    assert settings.SESSION_IDLE_SECONDS == 15 * 60
    with time_machine.travel(FIXED_NOW, tick=False) as clock:
        client.force_login(clinician)
        assert _signed_in(client)
        clock.shift(timedelta(minutes=15))
        assert _signed_in(client)  # exactly 15 minutes idle: still in
        clock.shift(timedelta(minutes=15, seconds=1))
        response = client.get("/patients/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")
        assert not _signed_in(client)


def test_idle_time_counts_from_sign_in_not_from_the_first_request(client, clinician):
    """Issue 21: signed in and left, the session stayed open until a first request."""
    with time_machine.travel(FIXED_NOW, tick=False) as clock:
        client.force_login(clinician)
        clock.shift(timedelta(minutes=15))
        assert _signed_in(client)  # 15:00 after sign-in: still in
    with time_machine.travel(FIXED_NOW, tick=False) as clock:
        client.force_login(clinician)
        clock.shift(timedelta(minutes=15, seconds=1))
        assert not _signed_in(client)  # 15:01 after sign-in, no request between: out


def test_an_active_session_ends_after_twelve_hours(client, clinician, settings):
    assert settings.SESSION_ABSOLUTE_SECONDS == 12 * 3600
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    with time_machine.travel(FIXED_NOW, tick=False) as clock:
        client.force_login(clinician)
        for _ in range(12 * 6):  # a request every 10 minutes, for 12 hours
            assert _signed_in(client)
            clock.shift(timedelta(minutes=10))
        clock.shift(timedelta(seconds=1))
        assert not _signed_in(client)


def test_an_idle_api_session_gets_401_not_a_redirect(client, clinician):
    with time_machine.travel(FIXED_NOW, tick=False) as clock:
        client.force_login(clinician)
        assert client.get("/api/v1/alerts/").status_code == 200
        clock.shift(timedelta(minutes=16))
        assert client.get("/api/v1/alerts/").status_code in (401, 403)
