"""/health/live and /health/ready against the real services, each stopped in turn.

Redis: a private redis-server the test stops and starts again. The worker and beat: a real
Celery worker with beat, then none. PostgreSQL: a private cluster behind a real gunicorn
process, stopped and started (as in tests/faults/test_postgres_restart.py). The MLLP listener: a
real TCP listener, then a closed port. The disk: a free-space limit the machine cannot meet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import time_machine

from carttrack import health
from tests.faults.test_postgres_restart import PG_BIN, ROOT, PrivatePostgres, _free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_heartbeat():
    health.cache.delete(health.BEAT_KEY)
    yield
    health.cache.delete(health.BEAT_KEY)


def _ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, json.loads(response.content)


def _no_secrets(body: dict, settings) -> None:
    text = json.dumps(body)
    for secret in (settings.SECRET_KEY, settings.REDIS_URL, "postgres://", "127.0.0.1"):
        assert secret not in text


def test_live_answers_without_signing_in(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert response["X-Request-ID"]


def test_ready_is_ok_with_a_worker_and_beat_and_fails_when_the_worker_stops(
    fresh_broker_pool, celery_worker_factory, wait_for, client, settings
):
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["worker"]["status"] == "unavailable"
    assert body["checks"]["beat"] == {
        "status": "unavailable",
        "seconds": body["checks"]["beat"]["seconds"],
        "error": "Unavailable: Beat has not run yet",
    }

    # Beat sends its heartbeat one period after it starts (every 2 s here); the worker runs it.
    worker = celery_worker_factory(beat=True, extra_env={"HEALTH_BEAT_SECONDS": "2"})
    fresh_broker_pool()
    wait_for(lambda: _ready(client)[0] == 200, timeout=30, what="/health/ready to be ok")
    status, body = _ready(client)
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "worker", "beat", "disk"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    _no_secrets(body, settings)

    worker.stop()
    fresh_broker_pool()
    status, body = _ready(client)
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["worker"]["status"] == "unavailable"
    assert body["checks"]["beat"]["status"] == "ok"  # the stamp is younger than two periods
    assert body["checks"]["database"]["status"] == "ok"


def test_ready_fails_while_redis_is_stopped_and_recovers(own_redis, client, settings):
    settings.REDIS_URL = own_redis.url
    status, body = _ready(client)
    assert body["checks"]["redis"]["status"] == "ok"

    own_redis.stop()
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["redis"]["status"] == "unavailable"
    assert "Unable to connect to Redis" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "ok"
    _no_secrets(body, settings)

    own_redis.start()
    assert _ready(client)[1]["checks"]["redis"]["status"] == "ok"


def test_beat_may_be_two_periods_old_not_a_second_more(client, settings):
    settings.HEALTH_BEAT_SECONDS = 60
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        health.beat_heartbeat_record()
        clock.shift(120)
        assert _ready(client)[1]["checks"]["beat"]["status"] == "ok"
        clock.shift(1)
        beat = _ready(client)[1]["checks"]["beat"]
    assert beat["status"] == "unavailable"
    assert beat["error"] == "Unavailable: Beat last ran 121 s ago (limit 120 s)"


def test_the_mllp_listener_is_checked_only_when_configured(client, settings):
    assert "mllp" not in _ready(client)[1]["checks"]
    listener = socket.create_server(("127.0.0.1", 0))
    settings.HL7_LISTEN_HOST = "127.0.0.1"
    settings.HL7_LISTEN_PORT = listener.getsockname()[1]
    try:
        assert _ready(client)[1]["checks"]["mllp"]["status"] == "ok"
    finally:
        listener.close()
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["mllp"] == {
        "status": "unavailable",
        "seconds": body["checks"]["mllp"]["seconds"],
        "error": "Unavailable: MLLP listener not accepting connections",
    }


def test_too_little_disk_space_for_uploads_fails_readiness(client, settings):
    assert _ready(client)[1]["checks"]["disk"]["status"] == "ok"
    settings.HEALTH_DISK_MIN_FREE_MB = 10**9  # a petabyte
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["disk"]["status"] == "unavailable"
    assert "MB free for uploads" in body["checks"]["disk"]["error"]


# --- PostgreSQL stopped under a running gunicorn -----------------------------------------------

needs_pg = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or os.geteuid() != 0,
    reason="needs PostgreSQL 15's initdb and root (to run it as the postgres user)",
)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@needs_pg
def test_ready_fails_while_postgresql_is_stopped_and_recovers(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="carttrack-pg-"))
    folder.chmod(0o755)
    server = PrivatePostgres(folder / "cluster")
    server.start()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    # No migrations needed: readiness asks PostgreSQL for SELECT 1 only.
    env.update(DATABASE_URL=server.url.rsplit("/", 1)[0] + "/postgres", SECRET_KEY="x")
    log = open(tmp_path / "gunicorn.log", "w")
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "carttrack.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        status, body = _get(base + "/health/ready")
        assert (status, body["status"]) == (200, "ok"), body
        assert set(body["checks"]) == {"database", "disk"}  # no Redis: tasks run in-process

        server.stop()
        status, body = _get(base + "/health/ready")
        assert status == 503
        assert body["checks"]["database"]["status"] == "unavailable"
        assert "postgres" not in json.dumps(body)
        assert _get(base + "/health/live") == (200, {"status": "ok"})

        server.start()
        assert _get(base + "/health/ready")[0] == 200
    finally:
        app.terminate()
        app.wait(timeout=20)
        log.close()
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_the_health_command_checks_beat_for_the_container(capsys):
    from django.core.management import call_command

    with pytest.raises(SystemExit) as stopped:
        call_command("health", "beat")
    assert stopped.value.code == 1
    assert json.loads(capsys.readouterr().out) == {"beat": "Unavailable: Beat has not run yet"}
    health.beat_heartbeat_record()
    call_command("health", "beat", "disk")
    assert json.loads(capsys.readouterr().out) == {"beat": "ok", "disk": "ok"}
