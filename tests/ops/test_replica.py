"""Reads that scale out (issue 22, item 4): a real PostgreSQL hot standby of the test server.

The standby (``pg_basebackup -R``, a second postmaster on a free port) serves the heavy reads:
the dashboard, exports, rule performance and the snapshot's dataset. A paused replay proves
which server answered: a patient written to the primary after the pause is missing from what
the replica serves. Writes, and reads that decide a write, stay on the primary; a replica that
falls behind or goes away is not used, and the fallback is logged.
"""

from __future__ import annotations

import io
import logging
import time
import types

import pandas as pd
import psycopg
import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

from analytics import services
from analytics.models import DashboardSnapshot
from carttrack.replica import (
    REPLICA,
    primary_reads,
    replica_forget,
    replica_reads,
    replica_state,
)
from patients.models import Patient
from tests.analytics.test_dataset import infused_patient
from tests.factories import CenterFactory
from tests.ops.standby import Standby

pytestmark = pytest.mark.django_db(transaction=True)

EXPORT = "/dashboard/export.csv"


@pytest.fixture(scope="module")
def standby(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        primary = connections["default"].settings_dict
    dsn = (
        f"host={primary['HOST'] or '127.0.0.1'} port={primary['PORT'] or 5432} "
        f"user={primary['USER'] or 'postgres'} dbname=postgres"
    )
    server = Standby(dsn).start()
    yield server
    server.remove()


@pytest.fixture
def replica(standby, transactional_db, settings):
    """The app configured with the standby as its replica (as DATABASE_REPLICA_URL does)."""
    settings.REPLICA_CHECK_SECONDS = 0
    settings.REPLICA_MAX_LAG_SECONDS = 30
    config = dict(connections["default"].settings_dict)
    config.update(HOST="127.0.0.1", PORT=str(standby.port), TEST={"MIRROR": "default"})
    config["OPTIONS"] = {**config.get("OPTIONS", {}), "connect_timeout": 3}
    connections.settings[REPLICA] = config
    _let_this_test_connect(REPLICA)
    replica_forget()
    standby.wait_until(lambda c: True, dbname=config["NAME"])  # the test database exists there
    yield standby
    try:
        with standby.connect(config["NAME"]) as c:
            if c.execute("SELECT pg_is_wal_replay_paused()").fetchone()[0]:
                c.execute("SELECT pg_wal_replay_resume()")
    except psycopg.OperationalError:
        pass  # the test stopped it
    connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]
    replica_forget()


def _let_this_test_connect(alias: str) -> None:
    """pytest-django's test case refuses connections to aliases it was not told about. The
    replica is configured after the case was made, and must not be declared (the case would
    flush it, and a standby is read-only), so its connection gets the real ensure_connection."""
    real = BaseDatabaseWrapper.ensure_connection
    while real.__name__ == "patched_ensure_connection":
        real = next(
            cell.cell_contents
            for cell in real.__closure__
            if getattr(cell.cell_contents, "__name__", "") == "ensure_connection"
        )
    connection = connections[alias]
    connection.ensure_connection = types.MethodType(real, connection)


def _primary_dsn() -> str:
    s = connections["default"].settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"host={host} port={port} user={s['USER']} dbname=postgres"


def _test_db() -> str:
    return connections["default"].settings_dict["NAME"]


def _signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def _exported_ids(browser: Client) -> set[str]:
    response = browser.get(EXPORT)
    assert response.status_code == 200, response.content[:300]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    return set(frame["study_id"])


def _pause_and_write_one(replica, center) -> Patient:
    """Pause the standby's replay, then write a patient on the primary it will not see."""
    replica.caught_up_with(_primary_dsn(), _test_db())
    with replica.connect(_test_db()) as c:
        c.execute("SELECT pg_wal_replay_pause()")
    late = infused_patient(center=center, bcells={7: None})
    with connections["default"].cursor() as cursor:  # more WAL than the standby has replayed
        cursor.execute("SELECT pg_switch_wal()")
    replica.wait_until(
        lambda c: c.execute(
            "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
        ).fetchone()[0],
        dbname=_test_db(),
    )
    return late


def test_heavy_reads_come_from_the_replica_and_say_as_of_when(replica, registry):
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    first = infused_patient(center=alpha, bcells={7: None, 21: 5})
    late = _pause_and_write_one(replica, alpha)
    assert Patient.objects.using("default").filter(pk=late.pk).exists()

    browser = _signed_in(registry)
    exported = _exported_ids(browser)
    assert first.study_id in exported
    assert late.study_id not in exported  # the paused replica answered, not the primary

    snapshot = services.snapshot_compute()  # the snapshot's dataset is read there too
    assert snapshot.n_patients == 1
    assert DashboardSnapshot.objects.using("default").filter(pk=snapshot.pk).exists()

    with replica.connect(_test_db()) as c:
        c.execute("SELECT pg_wal_replay_resume()")
    replica.caught_up_with(_primary_dsn(), _test_db())
    page = browser.get("/dashboard/")
    assert page.status_code == 200
    assert 'data-testid="replica-as-of"' in page.content.decode()
    assert snapshot.cohort_label.capitalize() in page.content.decode()
    rules = browser.get("/dashboard/rules/")
    assert rules.status_code == 200
    assert 'data-testid="replica-as-of"' in rules.content.decode()


def test_a_replica_behind_its_limit_is_not_used_and_the_fallback_is_logged(
    replica, registry, settings, caplog
):
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    late = _pause_and_write_one(replica, alpha)
    time.sleep(1.1)  # the replayed-transaction clock is now at least a second old
    browser = _signed_in(registry)
    assert late.study_id not in _exported_ids(browser)  # within 30 s: still the replica

    settings.REPLICA_MAX_LAG_SECONDS = 1
    replica_forget()
    with caplog.at_level(logging.WARNING, logger="carttrack.replica"):
        assert late.study_id in _exported_ids(browser)  # the primary answered
    assert any("behind" in r.getMessage() for r in caplog.records)
    state = replica_state(fresh=True)
    assert not state.usable and state.lag_seconds > 1


def test_writes_and_reads_that_decide_a_write_stay_on_the_primary(replica):
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    replica.caught_up_with(_primary_dsn(), _test_db())
    with replica_reads() as state:
        assert state.usable
        assert Patient.objects.all().db == REPLICA
        with primary_reads():
            assert Patient.objects.all().db == "default"
        patient = infused_patient(center=alpha)  # written while replica reads are on
    assert Patient.objects.using("default").filter(pk=patient.pk).exists()
    with replica.connect(_test_db()) as c:
        with pytest.raises(Exception, match="read-only"):
            c.execute("UPDATE patients_center SET name = name")


def test_a_replica_that_goes_away_is_replaced_by_the_primary(replica, registry, settings, caplog):
    """Last in this module: it stops the standby."""
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    patient = infused_patient(center=alpha)
    replica.caught_up_with(_primary_dsn(), _test_db())
    browser = _signed_in(registry)
    assert patient.study_id in _exported_ids(browser)

    # The replica was measured usable a moment ago and the measure is kept for an hour: the
    # request finds it gone mid-view and is answered again from the primary.
    settings.REPLICA_CHECK_SECONDS = 3600
    assert replica_state(fresh=True).usable
    replica.stop()
    with caplog.at_level(logging.WARNING, logger="carttrack.replica"):
        assert patient.study_id in _exported_ids(browser)
        page = browser.get("/dashboard/")
    assert page.status_code == 200
    assert 'data-testid="replica-as-of"' not in page.content.decode()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "answered from the primary" in messages
    assert "not reachable" in messages
