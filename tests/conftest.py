"""Shared fixtures: the real PostgreSQL check, named users of different rights, a fixed clock."""

import logging
import os
import re
import signal
import socket
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from patients.roles import roles_ensure
from tests.factories import CenterFactory, UserFactory

# "Now" for every test that needs one: the clinical dates in the factories lie before it.
FIXED_NOW = datetime(2025, 11, 3, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="session")
def _real_postgresql(django_db_setup, django_db_blocker):
    """The suite runs against real PostgreSQL (bin/test sets DATABASE_URL); refuse SQLite."""
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", (
            "The tests need PostgreSQL: run them with bin/test (it sets DATABASE_URL)."
        )
        # The flush after a transactional test truncates every table; the append-only ones
        # refuse TRUNCATE unless this is on (audit 0003). Only on the test database, and for
        # every session opened later (live servers, workers) as for this one.
        with connection.cursor() as cursor:
            name = connection.ops.quote_name(connection.settings_dict["NAME"])
            cursor.execute(f"ALTER DATABASE {name} SET carttrack.allow_truncate = 'on'")
            cursor.execute("SET carttrack.allow_truncate = 'on'")


# --- Every log line of the suite, scanned for the demo cohort's MRNs and names -----------------


class LogCapture(logging.Handler):
    """Session-wide: every record at INFO and above from every logger, formatted as production
    formats it (carttrack.logs.JsonFormatter), plus each Celery worker's log when it stops.
    At the end of the session (pytest_sessionfinish below) no line may hold a demo patient's
    MRN or name, and a run of more than a few tests must have captured lines at all."""

    def __init__(self):
        from carttrack.logs import JsonFormatter, RequestIDFilter

        super().__init__(level=logging.INFO)
        self.setFormatter(JsonFormatter(json_ensure_ascii=False))
        self.addFilter(RequestIDFilter())
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.handleError(record)

    def add_text(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line.strip())


LOG_CAPTURE = LogCapture()


def demo_identifiers() -> set[str]:
    """The MRNs and names the demo loader stores (demo.load.demo_batch)."""
    from demo.cohort import generate_cohort
    from demo.load import demo_batch

    patients = demo_batch(generate_cohort()).patients
    return {p.mrn for p in patients} | {p.full_name for p in patients}


def log_leaks(lines: list[str], identifiers: set[str]) -> list[str]:
    pattern = re.compile("|".join(re.escape(i) for i in sorted(identifiers, key=len, reverse=True)))
    return [line for line in lines if pattern.search(line)]


@pytest.fixture(autouse=True, scope="session")
def _capture_every_log_line():
    root = logging.getLogger()
    previous = root.level
    root.addHandler(LOG_CAPTURE)
    root.setLevel(min(previous, logging.INFO))
    yield LOG_CAPTURE
    root.removeHandler(LOG_CAPTURE)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def _log_capture_stays_attached(_capture_every_log_line):
    """Logging may be configured again during the run (Django's or Celery's setup called by a
    command or an in-process app replaces the root logger's handlers): every test starts with
    the capture attached, so the scan at the end sees every line."""
    root = logging.getLogger()
    if LOG_CAPTURE not in root.handlers:
        root.addHandler(LOG_CAPTURE)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "workerinput", None) is not None:
        return  # an xdist worker: its lines are its own (run without -n for the full check)
    lines = LOG_CAPTURE.lines
    problems = []
    if session.testscollected > 500 and not lines:  # the whole suite: some modules log nothing
        problems.append("the log capture saw no line at all: it is not attached")
    leaks = log_leaks(lines, demo_identifiers())
    if leaks:
        problems.append(
            f"{len(leaks)} of {len(lines)} log lines hold a demo patient's MRN or name:\n"
            + "\n".join(leaks[:20])
        )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line("LOG SCAN FAILED: " + "; ".join(problems), red=True)
    elif reporter and lines:
        reporter.write_line(f"log scan: {len(lines)} log lines, no MRN or name of the demo cohort")


@pytest.fixture(autouse=True)
def _clinical_dates_are_not_stale(settings):
    """The factories' clinical dates are fixed (2025) while results are entered on the real
    clock, so under the 60-day staleness limit (CLINICAL.md section 4) every finding of the
    suite would be history. The tests of what is news (tests/monitoring/test_news.py) set the
    limit back and enter their results on a fixed clock."""
    settings.ALERT_STALE_AFTER_DAYS = 100_000


@pytest.fixture(autouse=True)
def _each_test_starts_in_the_default_language():
    """A request activates its reader's language in the thread and Django leaves it active
    afterwards: without this a German page in one test would make the next test's texts German."""
    from django.conf import settings as django_settings
    from django.utils import translation

    translation.activate(django_settings.LANGUAGE_CODE)
    yield
    translation.activate(django_settings.LANGUAGE_CODE)


@pytest.fixture
def frozen_now():
    with time_machine.travel(FIXED_NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def fast_password_hashing(settings):
    """The production hasher takes a quarter of a second per password by design; signing in is
    what the tests check, not the hasher's cost. The default stays listed, so passwords set
    before (the demo users') still verify. Autouse for tests/patients and tests/monitoring."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        *settings.PASSWORD_HASHERS,
    ]


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
    user = UserFactory(
        username="clinician", first_name="Clara", last_name="Clinician", center=center
    )
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


# --- A real Celery worker against real Redis ---------------------------------------------------


def token_client(user):
    """An API client as a laboratory system uses it: with a token of `user`'s."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def lab_system(clinician):
    """A laboratory system posting with the clinician's token."""
    return token_client(clinician)


def _wait_for(predicate, *, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}")


def _reset_broker_pool(app) -> None:
    """Drop the cached broker connections, so the next publish uses the current URL.

    kombu keeps its pools in a registry keyed by broker URL: reset that too, or a later
    publish to the same URL gets a pool closed here ("Acquire on closed pool")."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


class CeleryWorker:
    """A `celery worker` subprocess on the test database, with its own queue and mail folder."""

    def __init__(
        self,
        *,
        redis_url: str,
        mail_dir,
        log_path,
        beat: bool = False,
        extra_env: dict | None = None,
    ):
        import os
        import subprocess
        import sys
        import uuid

        from carttrack.celery import app

        db = connection.settings_dict
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.redis_url = redis_url
        self.mail_dir = mail_dir
        self.log_path = log_path
        self._previous_queue = app.conf.task_default_queue
        self._previous_broker = app.conf.broker_url
        env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                f"{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "REDIS_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "False",
            "CELERY_QUEUE": self.queue,
            "EMAIL_FILE_PATH": str(mail_dir),
            **(extra_env or {}),
        }
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "carttrack",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "-Q",
            self.queue,
            "-n",
            f"{self.queue}@%h",
        ]
        if beat:
            args += ["--beat", "--schedule", str(log_path.parent / f"{self.queue}-beat")]
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        # This test process publishes to the worker's queue on the worker's broker.
        app.conf.task_default_queue = self.queue
        app.conf.broker_url = redis_url
        _reset_broker_pool(app)
        _wait_for(
            lambda: "ready." in log_path.read_text() or self.process.poll() is not None,
            timeout=60,
            what="the Celery worker to start",
        )
        assert self.process.poll() is None, f"The worker died:\n{log_path.read_text()}"

    def log(self) -> str:
        return self.log_path.read_text()

    def mails(self) -> list[str]:
        """Every message the worker wrote, one string each.

        Django's file backend appends to a file named by the second and the backend object's
        id(), so two messages sent in one second can share a file: split on its separator."""
        separator = "\n" + "-" * 79 + "\n"
        return [
            message + separator
            for path in sorted(self.mail_dir.glob("*.log"))
            for message in path.read_text().split(separator)
            if message.strip()
        ]

    def stop(self) -> None:
        from carttrack.celery import app

        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
        self._log.close()
        LOG_CAPTURE.add_text(self.log())  # scanned with the rest at the session's end
        app.conf.task_default_queue = self._previous_queue
        app.conf.broker_url = self._previous_broker
        _reset_broker_pool(app)


@contextmanager
def broker_unreachable():
    """Redis down as the app sees it: the broker URL points at a free port where nothing
    listens (the real Redis keeps running for the other tests)."""
    from carttrack.celery import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing will listen on it
    previous = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    _reset_broker_pool(app)
    try:
        yield
    finally:
        app.conf.broker_url = previous
        _reset_broker_pool(app)


@pytest.fixture
def broker_down():
    with broker_unreachable():
        yield


def worker_lost(worker, blocker) -> None:
    """SIGKILL a worker that waits on `blocker`'s lock, and end its PostgreSQL session, as when
    the worker's machine is lost (the server would otherwise notice the dead client only once
    the lock is released and it next writes to it, and finish the blocked statement)."""
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    ended = blocker.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        "current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchall()
    assert ended == [(True,)]


@pytest.fixture
def celery_worker_factory(transactional_db, tmp_path):
    """Start real Celery workers (and beat) on the test database; stopped after the test.

    Tests that use it need committed data, hence transactional_db.
    """
    import os

    workers = []

    def start(*, redis_url: str | None = None, beat: bool = False, extra_env=None):
        mail_dir = tmp_path / f"mail-{len(workers)}"
        mail_dir.mkdir()
        worker = CeleryWorker(
            redis_url=redis_url or os.environ["REDIS_URL"],
            mail_dir=mail_dir,
            log_path=tmp_path / f"worker-{len(workers)}.log",
            beat=beat,
            extra_env=extra_env,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def wait_for():
    return _wait_for
