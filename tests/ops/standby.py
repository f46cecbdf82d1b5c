"""A real PostgreSQL hot standby of the test server, for the replica tests.

``pg_basebackup -R`` copies the running cluster into a temporary folder and a second
postmaster serves it on a free 127.0.0.1 port as a streaming replica. The primary must allow
replication connections from 127.0.0.1: if no ``host replication`` rule exists, one (trust,
127.0.0.1 only, as the test server's other rules) is added and the configuration reloaded.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

SETTINGS_THAT_MUST_MATCH = (
    # A hot standby refuses to start with less than the primary has of these.
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bindir(primary: psycopg.Connection) -> Path:
    major = primary.execute("SHOW server_version_num").fetchone()[0][:2]
    return Path(f"/usr/lib/postgresql/{int(major)}/bin")


def _allow_replication(primary: psycopg.Connection) -> None:
    rules = primary.execute(
        "SELECT 1 FROM pg_hba_file_rules WHERE 'replication' = ANY(database)"
        " AND (address IS NULL OR address = '127.0.0.1' OR address = 'all')"
    ).fetchall()
    if rules:
        return
    hba = Path(primary.execute("SHOW hba_file").fetchone()[0])
    text = hba.read_text()
    hba.write_text(
        "# added by CARTtrack's replica tests: streaming replication from this machine only\n"
        "host replication all 127.0.0.1/32 trust\n" + text
    )
    primary.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


def _as_postgres(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


class Standby:
    def __init__(self, primary_dsn: str):
        self.primary_dsn = primary_dsn
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="carttrack-standby-", dir="/tmp"))
        self.data = self.folder / "data"
        self.bindir: Path | None = None

    def start(self) -> Standby:
        with psycopg.connect(self.primary_dsn, autocommit=True) as primary:
            _allow_replication(primary)
            self.bindir = _bindir(primary)
            matched = {
                name: primary.execute(f"SHOW {name}").fetchone()[0]
                for name in SETTINGS_THAT_MUST_MATCH
            }
            info = (primary.info.host, primary.info.port, primary.info.user)
        postgres = pwd.getpwnam("postgres")
        os.chown(self.folder, postgres.pw_uid, postgres.pw_gid)
        os.chmod(self.folder, 0o700)
        _as_postgres(
            [
                str(self.bindir / "pg_basebackup"),
                f"--host={info[0]}", f"--port={info[1]}", f"--username={info[2]}",
                f"--pgdata={self.data}", "--write-recovery-conf", "--wal-method=stream",
                "--checkpoint=fast", "--no-sync",
            ],
            timeout=300,
        )
        conf = "\n".join(
            [
                f"port = {self.port}",
                "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{self.folder}'",
                f"hba_file = '{self.folder / 'pg_hba.conf'}'",
                f"ident_file = '{self.folder / 'pg_ident.conf'}'",
                "hot_standby = on",
                "fsync = off",
                "wal_receiver_status_interval = 1s",
                *(f"{name} = {value}" for name, value in matched.items()),
            ]
        )
        for name, body in (
            ("postgresql.conf", conf + "\n"),
            ("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n"),
            ("pg_ident.conf", ""),
        ):
            path = (self.data if name == "postgresql.conf" else self.folder) / name
            path.write_text(body)
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
        _as_postgres(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
             "-w", "-t", "60", "start"],
            timeout=90,
        )
        self.wait_until(lambda c: c.execute("SELECT pg_is_in_recovery()").fetchone()[0])
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=3)

    def wait_until(self, predicate, *, dbname: str = "postgres", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with self.connect(dbname) as connection:
                    if predicate(connection):
                        return
            except psycopg.OperationalError as error:
                last = error
            time.sleep(0.2)
        raise AssertionError(f"standby on port {self.port} never got there ({last})")

    def caught_up_with(self, primary_dsn: str, dbname: str) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(primary_dsn, autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        self.wait_until(
            lambda c: c.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            ).fetchone()[0],
            dbname=dbname,
        )

    def stop(self) -> None:
        if self.bindir is not None and (self.data / "postmaster.pid").exists():
            _as_postgres(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                 "stop"],
                timeout=60,
            )

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
