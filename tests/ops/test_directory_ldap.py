"""Sign-in with the hospital directory: django-auth-ldap against a real OpenLDAP (slapd) started
here on a free port. Bind, user search, group → role and group → center, a removed or disabled
user losing access at the first request after LDAP_RECHECK_SECONDS, and local break-glass
administrators signing in while the directory is down."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from accounts.ldap_config import ldap_settings
from patients.models import ClinicianProfile
from tests.factories import UserFactory
from tests.ops.slapd import (
    GROUPS,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SLAPD,
    Slapd,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SLAPD.exists(), reason="needs Debian's slapd (.ci/run installs it)"),
]
PASSWORD = "Directory-pw-1"
T0 = datetime(2025, 11, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def directory(settings, center, other_center, roles):
    server = Slapd(Path(tempfile.mkdtemp(prefix="carttrack-slapd-")))
    server.start()
    server.base()
    people = {
        uid: server.person(uid, PASSWORD, given=given, surname=surname)
        for uid, given, surname in [
            ("ada", "Ada", "Hem"),
            ("ben", "Ben", "Hem"),
            ("rita", "Rita", "Reg"),
            ("root", "Rosa", "Admin"),
            ("nora", "Nora", "Norole"),
        ]
    }
    groups = {
        "hem": server.group("carttrack-hematologists", [people["ada"], people["ben"]]),
        "reg": server.group("carttrack-registry", [people["rita"]]),
        "adm": server.group("carttrack-admins", [people["root"]]),
        "alpha": server.group("center-alpha", [people["ada"]]),
        "beta": server.group("center-beta", [people["ben"]]),
        "other": server.group("canteen", [people["nora"]]),
    }
    configured = ldap_settings(
        server_uri=server.uri,
        bind_dn=SERVICE_DN,
        bind_password=SERVICE_PASSWORD,
        user_base=PEOPLE,
        # A disabled account no longer matches (as AD's userAccountControl filter does).
        user_filter="(&(uid=%(user)s)(!(employeeType=disabled)))",
        group_base=GROUPS,
        role_groups=f"hematologist={groups['hem']};registry={groups['reg']};admin={groups['adm']}",
        center_groups=f"alpha={groups['alpha']};beta={groups['beta']}",
        timeout_seconds=2,
    )
    for name, value in configured.items():
        setattr(settings, name, value)
    settings.LDAP_SERVER_URI = server.uri
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "accounts.directory.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    settings.LDAP_RECHECK_SECONDS = 300
    server.people, server.groups = people, groups
    yield server
    server.cleanup()


def _sign_in(client, username: str, password: str = PASSWORD) -> bool:
    response = client.post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and response["Location"] == "/"


def _signed_in(client) -> bool:
    response = client.get("/")
    return response.status_code == 200


def test_directory_groups_give_the_role_and_the_center(directory, client, django_user_model):
    assert _sign_in(client, "ada")
    ada = django_user_model.objects.get(username="ada")
    assert [g.name for g in ada.groups.all()] == ["Clinicians"]
    assert ClinicianProfile.objects.get(user=ada).center.code == "alpha"
    assert (ada.first_name, ada.email) == ("Ada", "ada@hospital.example")
    assert not ada.has_usable_password()  # the directory holds the password
    assert not ada.is_staff
    client.logout()

    assert _sign_in(client, "rita")
    rita = django_user_model.objects.get(username="rita")
    assert [g.name for g in rita.groups.all()] == ["Registry staff"]
    assert ClinicianProfile.objects.get(user=rita).center is None  # registry: every center
    client.logout()

    assert _sign_in(client, "root")
    assert django_user_model.objects.get(username="root").is_superuser
    assert client.get("/admin/").status_code == 200
    client.logout()

    assert not _sign_in(client, "nora")  # in the directory, but in no CARTtrack role group
    assert not _sign_in(client, "ada", "wrong-password")
    assert not _sign_in(client, "nobody")


def test_a_removed_user_loses_access_at_the_first_request_after_the_interval(directory, client):
    with time_machine.travel(T0, tick=False) as clock:
        assert _sign_in(client, "ada")
        directory.delete(directory.people["ada"])
        clock.shift(299)
        assert _signed_in(client)  # not asked again yet
        clock.shift(1)
        assert not _signed_in(client)  # 300 s: asked, gone, signed out
        assert not _sign_in(client, "ada")


def test_a_disabled_user_or_one_taken_out_of_the_role_group_is_signed_out(
    directory, client, settings, django_user_model
):
    settings.LDAP_RECHECK_SECONDS = 0  # every request
    assert _sign_in(client, "ben")
    assert _signed_in(client)
    directory.modify(directory.people["ben"], "employeeType", ["disabled"])
    assert not _signed_in(client)

    assert _sign_in(client, "ada")
    # Moved to Center Beta: the next check brings the center up to date.
    directory.modify(directory.groups["alpha"], "member", [directory.people["ben"]])
    directory.modify(directory.groups["beta"], "member", [directory.people["ada"]])
    assert _signed_in(client)
    ada = django_user_model.objects.get(username="ada")
    assert ClinicianProfile.objects.get(user=ada).center.code == "beta"
    # No longer a hematologist (and no other role): out at the next request.
    directory.modify(directory.groups["hem"], "member", [directory.people["ben"]])
    assert not _signed_in(client)
    assert not ada.groups.filter(name="Clinicians").exists()


def test_a_directory_outage_leaves_local_break_glass_admins_working(directory, client, settings):
    settings.LDAP_RECHECK_SECONDS = 0
    admin = UserFactory(username="breakglass", is_staff=True, is_superuser=True)
    admin.set_password("Break-glass-pw-1")
    admin.save()
    assert _sign_in(client, "ada")
    directory.stop()

    assert _signed_in(client)  # an outage is not a dismissal: the session goes on
    client.logout()
    assert not _sign_in(client, "ada")  # no directory, no directory sign-in
    assert _sign_in(client, "breakglass", "Break-glass-pw-1")
    assert client.get("/admin/").status_code == 200

    directory.start()
    client.logout()
    assert _sign_in(client, "ada")
