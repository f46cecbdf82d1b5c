"""Shared fixtures: the real PostgreSQL check, named users of different rights, a fixed clock."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from patients.demo_load import roles_ensure
from tests.factories import CenterFactory, UserFactory

# "Now" for every test that needs one: the clinical dates in the factories lie before it.
FIXED_NOW = datetime(2025, 11, 3, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="session")
def _real_postgresql(django_db_setup, django_db_blocker):
    """The suite runs against real PostgreSQL (bin/test sets DATABASE_URL); refuse SQLite."""
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", (
            "The tests need PostgreSQL: run them with bin/test (it sets DATABASE_URL).")


@pytest.fixture
def frozen_now():
    with time_machine.travel(FIXED_NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def center(db):
    return CenterFactory(code="alpha", name="Center Alpha")


@pytest.fixture
def other_center(db):
    return CenterFactory(code="beta", name="Center Beta", time_zone="Asia/Shanghai")


@pytest.fixture
def roles(db):
    return roles_ensure()


@pytest.fixture
def clinician(center, roles):
    """A hematologist at Center Alpha who may enter and correct clinical data."""
    user = UserFactory(username="clinician", first_name="Clara", last_name="Clinician",
                       center=center)
    user.groups.add(roles["clinician"])
    return user


@pytest.fixture
def stranger(other_center, roles):
    """A hematologist at another center: must not see Center Alpha's patients."""
    user = UserFactory(username="stranger", center=other_center)
    user.groups.add(roles["clinician"])
    return user


@pytest.fixture
def registry(roles):
    """Registry staff: read every center, change nothing, no identifiers."""
    user = UserFactory(username="registry", center=None)
    user.groups.add(roles["registry"])
    return user


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client
