"""Backups a site can trust: a dump of the whole database, and a check that it restores.

PostgreSQL: `pg_dump --format=custom` (PostgreSQL's own tool, consistent while the app runs) and
`pg_restore` into a scratch database that is dropped afterwards. The embedded SQLite demo: the
sqlite3 online backup API. Every record lives in the database (uploads are stored as their rows),
so the dump is the whole state. The check reports what a restore would give back: rows per
table, migrations the code expects that the dump lacks, and the append-only triggers of the
change history and the access log (which a restore must bring back too).

Connection settings go to pg_dump/pg_restore through the PG* environment, never the command
line (a password there would show in the process list).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.db import connection
from django.db.migrations.loader import MigrationLoader

# Tables PostgreSQL keeps append-only (audit 0002, patients 0004).
APPEND_ONLY_PREFIXES = ("audit_accessevent", "patients_historical")


class BackupError(Exception):
    """A dump or a restore check that failed; the message says what to do."""


@dataclass
class BackupReport:
    path: Path
    size: int
    sha256: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows in the dump
    missing_migrations: list[str] = field(default_factory=list)
    protected_tables: list[str] = field(default_factory=list)  # with append-only triggers
    missing_triggers: list[str] = field(default_factory=list)  # append-only tables without

    @property
    def complete(self) -> bool:
        return not self.missing_migrations and not self.missing_triggers


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _pg_environment(dbname: str | None = None) -> dict[str, str]:
    settings = connection.settings_dict
    env = dict(os.environ)
    for key, name in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER")):
        if settings.get(key):
            env[name] = str(settings[key])
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = settings["PASSWORD"]
    env["PGDATABASE"] = dbname or settings["NAME"]
    return env


def _run(command: list[str], *, env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{command[0]} failed: {detail[-1] if detail else done.returncode}")


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def backup_create(path: Path) -> BackupReport:
    """Dump the whole database to `path` (refuses to overwrite a file)."""
    if path.exists():
        raise BackupError(f"{path} exists; give a new file name (a backup is never overwritten).")
    if _is_postgresql():
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={path}"],
            env=_pg_environment(),
        )
    else:
        connection.ensure_connection()
        with closing(sqlite3.connect(path)) as target:
            connection.connection.backup(target)
    return BackupReport(path=path, size=path.stat().st_size, sha256=_digest(path))


def backup_verify(path: Path) -> BackupReport:
    """Restore `path` into a scratch database, report what it holds, drop the scratch."""
    if not path.is_file():
        raise BackupError(f"{path} is not a file.")
    report = BackupReport(path=path, size=path.stat().st_size, sha256=_digest(path))
    if _is_postgresql():
        _verify_postgresql(path, report)
    else:
        _verify_sqlite(path, report)
    return report


def _expected_migrations() -> set[tuple[str, str]]:
    return set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def _fill(report: BackupReport, cursor, tables: list[str], triggers_sql: str | None) -> None:
    for table in tables:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # names from the catalogue
        report.rows[table] = cursor.fetchone()[0]
    cursor.execute("SELECT app, name FROM django_migrations")
    applied = {(app, name) for app, name in cursor.fetchall()}
    report.missing_migrations = sorted(f"{a}.{n}" for a, n in _expected_migrations() - applied)
    if triggers_sql:
        cursor.execute(triggers_sql)
        report.protected_tables = sorted({row[0] for row in cursor.fetchall()})


_PG_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
# Append-only: a row trigger refusing UPDATE and DELETE (information_schema lists those) and a
# statement trigger refusing TRUNCATE (only pg_trigger has it: tgtype bit 5 = TRUNCATE).
_PG_APPEND_ONLY = (
    "SELECT event_object_table FROM information_schema.triggers "
    "WHERE trigger_name LIKE '%append_only' GROUP BY event_object_table "
    "HAVING count(DISTINCT event_manipulation) = 2 "
    "INTERSECT "
    "SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE t.tgname LIKE '%no_truncate' AND (t.tgtype & 32) <> 0"
)


def _verify_postgresql(path: Path, report: BackupReport) -> None:
    scratch = f"{connection.settings_dict['NAME']}_verify_{secrets.token_hex(4)}"
    admin = _pg_environment("postgres")
    conninfo = {
        "host": admin.get("PGHOST"),
        "port": admin.get("PGPORT"),
        "user": admin.get("PGUSER"),
        "password": admin.get("PGPASSWORD"),
    }
    conninfo = {k: v for k, v in conninfo.items() if v}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as server:
        server.execute(f'CREATE DATABASE "{scratch}"')
    try:
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={scratch}",
                str(path),
            ],
            env=_pg_environment(scratch),
        )
        with psycopg.connect(dbname=scratch, **conninfo) as restored, restored.cursor() as cursor:
            cursor.execute(_PG_TABLES)
            tables = [row[0] for row in cursor.fetchall()]
            _fill(report, cursor, tables, _PG_APPEND_ONLY)
        # The access log and every change-history table must come back append-only.
        must = {t for t in tables if t.startswith(APPEND_ONLY_PREFIXES)}
        report.missing_triggers = sorted(must - set(report.protected_tables))
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def _verify_sqlite(path: Path, report: BackupReport) -> None:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as restored:
            cursor = restored.cursor()
            if cursor.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{path} is damaged (SQLite integrity check).")
            tables = [
                row[0]
                for row in cursor.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            _fill(report, cursor, tables, None)
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a readable SQLite backup ({error}).") from error
