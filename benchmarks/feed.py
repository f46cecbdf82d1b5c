"""A sustained laboratory feed (issue 22, item 3): single-sample lab batches from concurrent
clients against gunicorn and a Celery worker on PostgreSQL and Redis.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carttrack_feed \\
    REDIS_URL=redis://127.0.0.1:6379/12 SECRET_KEY=x \\
        .venv/bin/python benchmarks/feed.py --patients 10000 --clients 8 --seconds 60

Drops and recreates the database DATABASE_URL names (refusing one that holds real patients, see
bench_setup.py), migrates it, registers N synthetic patients at one center (infused 20 days
before today, B-cell aplasia documented on day 7, one responsible hematologist who receives
e-mail), then:

  1. starts gunicorn (`--workers`, default 2) and one Celery worker process (`--concurrency 1`)
     with `EMAIL_URL=dummymail://`: a notification is "handed to the mail backend" when its
     outbox row has `sent_at`;
  2. `--clients` threads (one keep-alive HTTP connection each, token authentication) post
     single-sample batches (`POST /api/v1/lab-results/`, one PB B-cell count, each to a patient
     not yet posted to) for `--seconds`; 1 in 10 is a detectable count (early B-cell
     regeneration on day 20: a HIGH alert and an e-mail), the rest undetectable;
  3. prints throughput, request-to-answer p50/p95/max, request-to-alert-stored (the alert's
     `raised_at`) and request-to-notification-sent (`sent_at`) p50/p95/max, errors, lost
     samples (answered 201 but not stored, or stored twice), and the server CPU per request:
     the gunicorn workers' user+system CPU (from /proc) over the run divided by the requests
     answered, and the Celery worker's CPU per notification.

`--profile N` instead runs N single-sample POSTs in this process through Django's test client
under cProfile and prints the SQL queries and CPU ms per request and the functions with the most
own time (for finding the per-request fixed costs). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_setup import (  # noqa: E402
    aplasia_cohort_store,
    django_on_new_database,
    free_port,
    gunicorn_start,
    percentile,
)

TICKS = os.sysconf("SC_CLK_TCK")


def setup(n_patients: int) -> tuple[str, list[str]]:
    """The center, N patients in aplasia, one clinician (token) responsible for all of them."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from patients.models import Center, ClinicianProfile, Patient
    from patients.roles import roles_ensure

    center = Center.objects.create(code="feed", name="Feed Center", time_zone="Europe/Berlin")
    infused = (datetime.now(UTC) - timedelta(days=20)).date()
    patients = aplasia_cohort_store(
        center, n_patients, prefix="FEED", infused=infused, with_mrn=False
    )
    user = get_user_model().objects.create_user(
        "feed-lab", email="feed-lab@example.org", password=None
    )
    ClinicianProfile.objects.create(user=user, center=center)
    user.groups.add(roles_ensure()["clinician"])
    through = Patient.hematologists.through
    through.objects.bulk_create(
        [through(patient_id=p.pk, user_id=user.pk) for p in patients], batch_size=5000
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would, before the run
    return Token.objects.create(user=user).key, [p.study_id for p in patients]


def collection_base() -> datetime:
    """The first collection time: 11 hours ago (day 19 or 20 after the infusion, inside the
    45-day window), so that the 600 minutes of collection times the clients use are all past
    whatever the hour the benchmark runs (a future time is refused)."""
    return (datetime.now(UTC) - timedelta(hours=11)).replace(second=0, microsecond=0)


def body(study_id: str, collected: datetime, detectable: bool) -> bytes:
    value = {"analyte": "pb_bcell_abs", "value": "5" if detectable else "0", "unit": "cells/uL"}
    sample = {"study_id": study_id, "collected_at": collected.isoformat(), "values": [value]}
    return json.dumps({"samples": [sample]}).encode()


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def wait_http(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health/live")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not answer")


class Feed:
    def __init__(self, port: int, token: str, study_ids: list[str]):
        self.port, self.token, self.study_ids = port, token, study_ids
        self.base = collection_base()
        self.next = 0
        self.lock = threading.Lock()
        self.sent: list[tuple[str, bool, float, float, int]] = []  # id, high, start, end, status
        self.errors: list[str] = []

    def take(self) -> int | None:
        with self.lock:
            if self.next >= len(self.study_ids):
                return None
            self.next += 1
            return self.next - 1

    def client(self, until: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        while time.monotonic() < until:
            i = self.take()
            if i is None:
                return
            high = i % 10 == 9
            payload = body(self.study_ids[i], self.base + timedelta(minutes=i % 600), high)
            started = time.time()
            try:
                connection.request("POST", "/api/v1/lab-results/", payload, headers)
                response = connection.getresponse()
                text = response.read()
                status = response.status
            except OSError as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, text = 0, str(error).encode()
            ended = time.time()
            with self.lock:
                self.sent.append((self.study_ids[i], high, started, ended, status))
                if status != 201:
                    self.errors.append(f"{status} {text[:200]!r}")


def run(options) -> None:
    from django.db import connection
    from django.db.models import Count

    from monitoring.models import Alert, Notification
    from patients.models import LabResult

    token, study_ids = setup(options.patients)
    connection.close()
    env = {
        **os.environ,
        "EMAIL_URL": "dummymail://",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "False",
    }
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"feed-bench-{os.getpid()}.log", "w")
    gunicorn = gunicorn_start(port, options.workers, cwd=ROOT, env=env, output=log)
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "carttrack",
            "worker",
            "--concurrency=1",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(port)
        time.sleep(3)  # the worker connects to Redis
        warm = Feed(port, token, study_ids[-200:])
        warm.client(time.monotonic() + 3)  # imports the views in each worker; not counted
        feed = Feed(port, token, study_ids[:-200])
        server_pids = children(gunicorn.pid)
        worker_pids = [worker.pid, *children(worker.pid)]
        load_before = os.getloadavg()
        cpu_server, cpu_worker = cpu_seconds(server_pids), cpu_seconds(worker_pids)
        began = time.monotonic()
        until = began + options.seconds
        threads = [
            threading.Thread(target=feed.client, args=(until,)) for _ in range(options.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        cpu_server = cpu_seconds(server_pids) - cpu_server
        load_after = os.getloadavg()
        high_ids = [s[0] for s in feed.sent if s[1] and s[4] == 201]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the outbox drains
            left = Notification.objects.filter(
                alert__patient__study_id__in=high_ids, sent_at__isnull=True
            ).count()
            if not left:
                break
            time.sleep(0.5)
        cpu_worker = cpu_seconds(worker_pids) - cpu_worker
    finally:
        gunicorn.terminate()
        worker.terminate()
        gunicorn.wait(timeout=30)
        worker.wait(timeout=30)

    ok = [s for s in feed.sent if s[4] == 201]
    answer = [s[3] - s[2] for s in ok]
    started = {s[0]: s[2] for s in ok}
    stored = dict(
        LabResult.objects.filter(patient__study_id__in=list(started), collected_at__gte=feed.base)
        .values("patient__study_id")
        .annotate(n=Count("id"))
        .values_list("patient__study_id", "n")
    )
    lost = [sid for sid in started if stored.get(sid, 0) != 1]
    alerts = dict(
        Alert.objects.filter(patient__study_id__in=high_ids, severity="high").values_list(
            "patient__study_id", "raised_at"
        )
    )
    sent = dict(
        Notification.objects.filter(
            alert__patient__study_id__in=high_ids, sent_at__isnull=False
        ).values_list("alert__patient__study_id", "sent_at")
    )
    to_alert = [alerts[sid].timestamp() - started[sid] for sid in high_ids if sid in alerts]
    to_mail = [sent[sid].timestamp() - started[sid] for sid in high_ids if sid in sent]
    ms = 1000

    def trio(values: list[float]) -> str:
        if not values:
            return "—"
        return (
            f"{statistics.median(values) * ms:.0f} / {percentile(values, 95) * ms:.0f} / "
            f"{max(values) * ms:.0f}"
        )

    print(
        f"\nSustained feed: {options.clients} clients, single-sample batches, {elapsed:.0f} s, "
        f"{options.patients:,} patients, gunicorn {options.workers} workers + 1 Celery worker\n"
    )
    print("| figure | value | target |\n|---|---:|---:|")
    print(f"| samples answered 201 | {len(ok):,} | |")
    print(f"| errors (not 201) | {len(feed.errors)} | 0 |")
    print(f"| lost or doubled (answered 201, not stored once) | {len(lost)} | 0 |")
    print(f"| throughput (samples/s) | {len(ok) / elapsed:.1f} | ≥ 150 |")
    print(f"| request to answer p50 / p95 / max (ms) | {trio(answer)} | |")
    print(
        f"| HIGH alerts expected / stored / e-mails sent | {len(high_ids)} / {len(alerts)} / "
        f"{len(sent)} | all |"
    )
    print(f"| request to alert stored p50 / p95 / max (ms) | {trio(to_alert)} | |")
    print(
        f"| request to notification handed to the mail backend p50 / p95 / max (ms) | "
        f"{trio(to_mail)} | p95 ≤ 300, max ≤ 1,000 |"
    )
    print(
        f"| gunicorn CPU per request (ms, user+system of {len(server_pids)} workers) | "
        f"{cpu_server / max(1, len(ok)) * ms:.1f} | ≤ 13 |"
    )
    print(f"| Celery worker CPU per e-mail (ms) | {cpu_worker / max(1, len(sent)) * ms:.1f} | |")
    if feed.errors:
        print("\nFirst error:", feed.errors[0])
    before = " ".join(f"{x:.2f}" for x in load_before)
    after = " ".join(f"{x:.2f}" for x in load_after)
    print(f"\nLoad average (1, 5, 15 min) before: {before}; after: {after}")


def profile(options) -> None:
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    token, study_ids = setup(options.patients)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    base = collection_base()

    def post(i: int) -> None:
        response = client.post(
            "/api/v1/lab-results/",
            body(study_ids[i], base + timedelta(minutes=i), i % 10 == 9),
            content_type="application/json",
        )
        if response.status_code != 201:
            sys.exit(f"API refused: {response.status_code} {response.content[:300]}")

    for i in range(10):  # warm-up: imports, caches
        post(i)
    n = options.profile
    with CaptureQueriesContext(connection) as capture:
        cpu = time.process_time()
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(10, 10 + n):
            post(i)
        profiler.disable()
        cpu = time.process_time() - cpu
    print(f"\n{n} single-sample POSTs in-process (1 in 10 raising a HIGH alert)")
    print(f"SQL queries per request: {len(capture.captured_queries) / n:.1f}")
    print(f"CPU ms per request (with the profiler's overhead): {cpu / n * 1000:.1f}")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    options = parser.parse_args()
    if not options.profile and not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL (the notifications go through a real Celery worker)")
    os.environ.setdefault("EMAIL_URL", "dummymail://")
    django_on_new_database(
        os.environ.get("DATABASE_URL", ""), allowed_hosts="testserver,127.0.0.1,localhost"
    )
    if options.profile:
        profile(options)
    else:
        run(options)
        from snapshot_10k import machine

        print("\nMachine:")
        for key, value in machine().items():
            print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
