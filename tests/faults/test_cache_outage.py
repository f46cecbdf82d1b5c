"""Redis down while clinicians work: the cache (alert badge, figures, rule tables, import
progress) is a miss, never a failed page. The cache points at a port where nothing listens,
through the production backend (`carttrack.cache.ForgivingRedisCache`)."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache

from monitoring.badge import badge_versions_bump
from tests.monitoring.test_inbox import stored_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_down(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing will listen on it
    settings.CACHES = {
        "default": {
            "BACKEND": "carttrack.cache.ForgivingRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
    yield
    # pytest-django restores CACHES (and Django's setting_changed drops the cache handlers).


def test_pages_work_and_the_badge_is_counted_with_the_cache_down(
    cache_down, clinician, clinician_client, center, frozen_now, caplog
):
    alert = stored_alert("CT-0971", center=center, severity="high")
    alert.patient.hematologists.add(clinician)
    assert cache.get("anything", "missed") == "missed"  # really down: a miss, no error
    for url in ("/", "/patients/", "/alerts/", "/patients/CT-0971/", "/dashboard/"):
        page = clinician_client.get(url)
        assert page.status_code == 200, url
        assert 'data-testid="nav-monitoring-count">1<' in page.content.decode(), url
    badge_versions_bump([center.pk])  # a save's bump: logged, not raised
    assert "Cache unavailable" in caplog.text


def test_other_errors_still_raise(cache_down):
    with pytest.raises(ValueError):
        cache.set("key", "value", timeout="not a number")


def test_the_configured_cache_is_the_forgiving_one():
    from django.conf import settings

    assert settings.CACHES["default"]["BACKEND"] == "carttrack.cache.ForgivingRedisCache"
