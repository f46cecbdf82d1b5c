"""A backup is the whole state and it restores: pg_dump of the real PostgreSQL test database,
restored by `backup_verify` into a scratch database that is dropped afterwards, with the rows,
the migrations and the append-only triggers of the change history and access log all back."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from carttrack.backups import backup_create, backup_verify
from patients.models import LabResult
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump sees committed rows only


def _day(day: int) -> datetime:
    return datetime(2025, 3, day, 8, tzinfo=BERLIN)


def _databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def test_a_backup_restores_with_every_row_migration_and_trigger(center, tmp_path, capsys):
    patient = PatientFactory(center=center, study_id="CT-0961")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    for n in range(3):
        LabResultFactory(patient=patient, value=Decimal(f"{n}.25"), collected_at=_day(8 + n))
    path = tmp_path / "carttrack.dump"
    call_command("backup_create", str(path))
    assert "Backup written" in capsys.readouterr().out
    LabResultFactory(patient=patient, collected_at=_day(20))  # after the backup: not in it
    before = _databases()

    report = backup_verify(path)

    assert report.complete and report.missing_migrations == []
    assert report.rows["patients_patient"] == 1
    assert report.rows["patients_labresult"] == 3 == LabResult.objects.count() - 1
    assert report.rows["patients_historicallabresult"] == 3
    # The change history (9 tables) and the access log come back append-only.
    assert "audit_accessevent" in report.protected_tables
    assert "patients_historicallabresult" in report.protected_tables
    assert len(report.protected_tables) == 10
    assert _databases() == before  # the scratch database is gone


def test_the_command_reports_the_restore_and_refuses_a_damaged_file(center, tmp_path, capsys):
    PatientFactory(center=center, study_id="CT-0962")
    path = tmp_path / "carttrack.dump"
    backup_create(path)
    call_command("backup_verify", str(path))
    out = capsys.readouterr().out
    assert "patients_patient" in out and "The backup restores completely." in out
    assert "Append-only tables (triggers restored): 10" in out

    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = _databases()
    with pytest.raises(CommandError, match="pg_restore failed"):
        call_command("backup_verify", str(damaged))
    assert _databases() == before


def test_a_backup_never_overwrites_a_file(tmp_path):
    path = tmp_path / "kept.dump"
    path.write_bytes(b"yesterday's backup")
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("backup_create", str(path))
    assert path.read_bytes() == b"yesterday's backup"


def test_the_dump_reads_the_database_through_the_environment_not_the_command_line(
    center, tmp_path, monkeypatch
):
    """No password on a command line (the process list shows it): pg_dump gets PG* variables."""
    import subprocess

    seen = {}
    real_run = subprocess.run

    def recording_run(command, **kwargs):
        seen["command"], seen["env"] = command, kwargs["env"]
        return real_run(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    backup_create(tmp_path / "env.dump")
    assert seen["env"]["PGDATABASE"] == connection.settings_dict["NAME"]
    assert not any("postgres://" in part or "password" in part for part in seen["command"])


def test_a_backup_without_an_append_only_trigger_is_refused(center, tmp_path):
    """A dump whose change history would come back editable (here: a trigger dropped before
    the dump) does not pass the check."""
    import importlib

    history = importlib.import_module("patients.migrations.0004_history_append_only")
    table = "patients_historicalinfusion"
    with connection.cursor() as cursor:
        cursor.execute(history.DROP_TRIGGER.format(table=table))
    try:
        path = tmp_path / "no-trigger.dump"
        backup_create(path)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(history.TRIGGER.format(table=table))
    report = backup_verify(path)
    assert report.missing_triggers == [table] and not report.complete
    with pytest.raises(CommandError, match="without their append-only trigger: " + table):
        call_command("backup_verify", str(path))
