"""Fault: PostgreSQL restarted while the application runs.

A private PostgreSQL cluster (initdb in a temporary folder, a free port, run as the postgres
OS user) serves a real gunicorn process; the shared server is never touched. A signed-in
clinician's page works; with PostgreSQL stopped the next request gets a plain 503 page that
says the database cannot be reached (no traceback); once PostgreSQL is back the same gunicorn
process and the same session work again, without a restart.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or os.geteuid() != 0,
    reason="needs PostgreSQL 15's initdb and root (to run it as the postgres user)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    def __init__(self, folder: Path):
        self.folder, self.port = folder, _free_port()
        self.data = folder / "data"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "postgres", "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/carttrack"

    def _as_postgres(self, *args) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, args)],
            check=True,
            capture_output=True,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.folder / "log",
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres():
    # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="carttrack-pg-"))
    folder.chmod(0o755)
    server = PrivatePostgres(folder / "cluster")
    server.start()
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(folder, ignore_errors=True)


def _env(database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG",)}
    env.update(DATABASE_URL=database_url, SECRET_KEY="fault-test-only", DEBUG="False")
    env.pop("REDIS_URL", None)  # tasks in-process: this test is about the database
    return env


def _manage(env, *args) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


class Browser:
    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get_full(self, path: str, headers: dict | None = None) -> tuple[int, dict, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def login(self, username: str, password: str) -> None:
        _status, page = self.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        request = urllib.request.Request(
            self.base + "/login/", data=data, headers={"Referer": self.base + "/login/"}
        )
        with self.opener.open(request, timeout=30) as response:
            assert "/login/" not in response.geturl(), "sign-in failed"


def test_postgres_restart_gives_a_clear_page_then_recovers_without_restarting_the_app(
    private_postgres, tmp_path
):
    admin_url = private_postgres.url.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE carttrack")
    env = _env(private_postgres.url)
    _manage(env, "migrate", "--noinput")
    _manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_superuser('ops', 'ops@example.org', 'Fault-test-password-1')",
    )
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "carttrack.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        browser = Browser(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        browser.login("ops", "Fault-test-password-1")
        assert browser.get("/patients/")[0] == 200

        private_postgres.stop()
        pages = [browser.get("/patients/") for _ in range(3)]
        for status, body in pages:
            assert status == 503, body[:500]
            assert "cannot reach its database" in body
            assert "Traceback" not in body and "OperationalError" not in body
        # The API (issue 21): a JSON 503 with Retry-After, with the session (the failure comes
        # in a middleware) and with a token (in DRF's authentication, its exception handler).
        for headers in ({}, {"Authorization": "Token " + "0" * 40}):
            status, answer, body = browser.get_full("/api/v1/alerts/", headers)
            assert status == 503, body[:500]
            assert answer.get("Retry-After") == "30"
            assert "database cannot be reached" in json.loads(body)["detail"]

        private_postgres.start()
        status, body = browser.get("/patients/")
        assert status == 200, body[:500]  # same process, same session: no restart needed
        assert app.poll() is None
    finally:
        app.terminate()
        app.wait(timeout=20)
        log.close()
