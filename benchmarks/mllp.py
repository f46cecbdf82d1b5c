"""The HL7 v2 MLLP listener's throughput and ACK latency, message-to-alert latency, and the lab
API's single-sample figure in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carttrack_mllp SECRET_KEY=x \\
        .venv/bin/python benchmarks/mllp.py --seconds 20 --senders 4

Drops and recreates the database DATABASE_URL names (refusing one that holds real patients,
see bench_setup.py), migrates it, registers N synthetic patients (infused 20 days ago, B-cell
aplasia documented on day 7) at one center with an HL7 feed, then:

  1. starts `manage.py hl7_listen --port 0` as its own process (HL7_WORKERS threads);
  2. 4 concurrent senders (threads, one python-hl7 MLLPClient connection each) send
     single-result ORU^R01 messages (one OBX: an undetectable PB B-cell count, each patient a
     new collection time) for `--seconds`: messages per second acknowledged, ACK latency
     p50/p95/max (send to ACK received), every ACK checked to be AA;
  3. message-to-alert: for 20 patients one message with a detectable count (day 20 after
     aplasia: early B-cell regeneration), time from send until the alert is readable in the
     database by another connection (the import and its alerts commit before the ACK);
  4. the lab API in-process (Django's test client, token authentication): single-sample
     batches of the same shape, sequentially, samples per second and latency p50/p95;
  5. the load-independent figures: SQL queries (Django's CaptureQueriesContext; the COPY of
     the lab results is not counted) and CPU milliseconds of this process
     (`time.process_time`, PostgreSQL's own CPU not included) per message, `--profile-messages`
     messages through `hl7_message_receive` in-process, and the same for the lab API's
     single-sample POSTs.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
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

from bench_setup import aplasia_cohort_store, django_on_new_database, percentile  # noqa: E402


def setup(n_patients: int):
    from imports.models import CodeMapping, HL7Feed
    from patients.models import Center

    center = Center.objects.create(code="bench", name="Bench Center", time_zone="Europe/Berlin")
    CodeMapping.objects.create(center=center, system="L", code="CD19ABS", analyte="pb_bcell_abs")
    HL7Feed.objects.create(
        center=center,
        sending_application="BENCHLAB",
        sending_facility="HOSP",
        identifier_type="MR",
        identifier_is="mrn",
    )
    infused = (datetime.now(UTC) - timedelta(days=20)).date()
    patients = aplasia_cohort_store(
        center, n_patients, prefix="MLLP", infused=infused, with_mrn=True
    )
    return center, patients, infused


def message(control: str, mrn: str, when: datetime, value: str) -> str:
    stamp = when.strftime("%Y%m%d%H%M%S+0000")
    return (
        "\r".join(
            [
                f"MSH|^~\\&|BENCHLAB|HOSP|CARTTRACK|BENCH|{stamp}||ORU^R01^ORU_R01|{control}|P|2.5.1",
                f"PID|1||{mrn}^^^HOSP^MR",
                f"OBR|1||{control}|CD19^B cells^L|||{stamp}",
                f"OBX|1|NM|CD19ABS^CD19+ B cells^L||{value}|/uL|||||F",
            ]
        )
        + "\r"
    )


def start_listener(url: str) -> tuple[subprocess.Popen, str, Path]:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"mllp-bench-{os.getpid()}.log"
    out = open(log, "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "hl7_listen", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        if "Listening for HL7 v2 (MLLP) on " in text:
            return process, text.split("Listening for HL7 v2 (MLLP) on ")[1].split()[0], log
        if process.poll() is not None:
            sys.exit(f"The listener stopped:\n{text}")
        time.sleep(0.2)
    sys.exit("The listener did not start in 120 s.")


def throughput(address: str, patients, infused, senders: int, seconds: float):
    from hl7.client import MLLPClient

    host, port = address.rsplit(":", 1)
    latencies: list[list[float]] = [[] for _ in range(senders)]
    refused: list[str] = []
    stop_at = time.monotonic() + seconds
    base = datetime.combine(infused + timedelta(days=8), datetime.min.time(), UTC)

    def send(k: int) -> None:
        mine = patients[k::senders]
        with MLLPClient(host, int(port)) as client:
            n = 0
            while time.monotonic() < stop_at:
                patient = mine[n % len(mine)]
                when = base + timedelta(minutes=n // len(mine) + 1)
                text = message(f"T{k}-{n}", patient.mrn, when, "0")
                started = time.perf_counter()
                ack = client.send_message(text)
                latencies[k].append(time.perf_counter() - started)
                if b"MSA|AA|" not in ack:
                    refused.append(ack.decode(errors="replace")[:300])
                n += 1

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    every = [x for per in latencies for x in per]
    return every, elapsed, refused


def to_alert(address: str, patients, infused) -> list[float]:
    from hl7.client import MLLPClient

    from monitoring.models import Alert

    host, port = address.rsplit(":", 1)
    when = datetime.combine(infused + timedelta(days=19), datetime.min.time(), UTC)
    out = []
    with MLLPClient(host, int(port)) as client:
        for i, patient in enumerate(patients[:20]):
            started = time.perf_counter()
            client.send_message(message(f"ALERT-{i}", patient.mrn, when, "15"))
            while not Alert.objects.filter(patient=patient, rule="early_regeneration").exists():
                if time.perf_counter() - started > 30:
                    sys.exit(f"No alert for {patient.study_id} within 30 s")
                time.sleep(0.002)
            out.append(time.perf_counter() - started)
    return out


def per_message(patients, infused, n: int) -> tuple[float, float]:
    """Queries and CPU ms per single-result message, in this process (no MLLP, no threads)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imports.hl7v2 import hl7_message_receive

    base = datetime.combine(infused + timedelta(days=10), datetime.min.time(), UTC)

    def one(i: int, prefix: str, hour: int) -> None:
        patient = patients[(i + 20) % len(patients)]  # not the alert patients
        when = base + timedelta(hours=hour, minutes=i)  # each message a time of its own
        ack = hl7_message_receive(raw=message(f"{prefix}{i}", patient.mrn, when, "0"))
        if "MSA|AA|" not in ack:
            sys.exit(f"Refused in-process: {ack[:300]}")

    for i in range(5):  # warm-up: imports, caches
        one(i, "WARM-", 1)
    with CaptureQueriesContext(connection) as queries:
        cpu = time.process_time()
        for i in range(n):
            one(i, "CPU-", 2)
        cpu = time.process_time() - cpu
    return len(queries.captured_queries) / n, cpu / n * 1000


def per_group(patients, infused, size: int, n: int) -> tuple[float, float]:
    """Queries and CPU ms per message when stored messages are processed `size` at a time
    (`hl7_messages_process`, the listener's group commit), in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imports.hl7v2 import hl7_message_store, hl7_messages_process, normalize

    base = datetime.combine(infused + timedelta(days=11), datetime.min.time(), UTC)
    groups = []
    for g in range(max(1, n // size)):
        ids = []
        for j in range(size):
            i = g * size + j
            patient = patients[(i + 20) % len(patients)]
            when = base + timedelta(hours=size, minutes=i)
            raw = normalize(message(f"GROUP{size}-{i}", patient.mrn, when, "0"))
            ids.append(hl7_message_store(raw=raw).pk)
        groups.append(ids)
    with CaptureQueriesContext(connection) as queries:
        cpu = time.process_time()
        for ids in groups:
            acks = hl7_messages_process(message_ids=ids)
            if not all("MSA|AA|" in ack for ack in acks.values()):
                sys.exit(f"Refused in a group: {acks}")
        cpu = time.process_time() - cpu
    count = len(groups) * size
    return len(queries.captured_queries) / count, cpu / count * 1000


def lab_api(patients, infused, n: int, counted: list | None = None) -> list[float]:
    import json

    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from patients.models import ClinicianProfile
    from patients.roles import roles_ensure

    user = get_user_model().objects.create_user("bench-lab", password=None)
    ClinicianProfile.objects.create(user=user, center=patients[0].center)
    user.groups.add(roles_ensure()["clinician"])
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    base = datetime.combine(infused + timedelta(days=9), datetime.min.time(), UTC)
    out = []
    for i in range(n + 5):
        if i == 5 and counted is not None:
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            capture = CaptureQueriesContext(connection)
            capture.__enter__()
            cpu = time.process_time()
        patient = patients[i % len(patients)]
        body = {
            "samples": [
                {
                    "study_id": patient.study_id,
                    "collected_at": (base + timedelta(minutes=i)).isoformat(),
                    "values": [{"analyte": "pb_bcell_abs", "value": "0", "unit": "cells/uL"}],
                }
            ]
        }
        started = time.perf_counter()
        response = client.post(
            "/api/v1/lab-results/", json.dumps(body), content_type="application/json"
        )
        if response.status_code != 201:
            sys.exit(f"API refused: {response.status_code} {response.content[:300]}")
        if i >= 5:  # the first requests import the views
            out.append(time.perf_counter() - started)
    if counted is not None and n:
        counted[:] = [
            len(capture.captured_queries) / n,
            (time.process_time() - cpu) / n * 1000,
        ]
        capture.__exit__(None, None, None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--api-samples", type=int, default=200)
    parser.add_argument("--profile-messages", type=int, default=100)
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    django_on_new_database(url)
    from snapshot_10k import machine

    center, patients, infused = setup(options.patients)
    load_before = os.getloadavg()
    process, address, log = start_listener(url)
    try:
        throughput(address, patients, infused, options.senders, 2)  # warm-up, not counted
        latencies, elapsed, refused = throughput(
            address, patients, infused, options.senders, options.seconds
        )
        alert_latencies = to_alert(address, patients, infused)
    finally:
        process.terminate()
        process.wait(timeout=20)
    queries, cpu_ms = per_message(patients, infused, options.profile_messages)
    grouped = {
        size: per_group(patients, infused, size, options.profile_messages) for size in (4, 16)
    }
    api_counted: list[float] = []
    api = lab_api(patients, infused, options.api_samples, api_counted)
    load_after = os.getloadavg()
    ms = 1000
    print(
        f"\nMLLP listener ({os.environ.get('HL7_WORKERS', '4')} worker threads), "
        f"{options.senders} concurrent senders, single-result ORU^R01, {options.seconds:.0f} s, "
        f"group commit: up to {os.environ.get('HL7_GROUP_MAX', '16')} a group, "
        f"{os.environ.get('HL7_GROUPS', '1')} group(s) at once, "
        f"{os.environ.get('HL7_GROUP_LINGER_MS', '10')} ms linger\n"
    )
    print("| figure | value | target |\n|---|---:|---:|")
    print(f"| messages acknowledged | {len(latencies):,} | |")
    print(f"| of them not AA | {len(refused)} | 0 |")
    print(f"| throughput (messages/s) | {len(latencies) / elapsed:.1f} | ≥ 100 |")
    print(f"| ACK latency p50 (ms) | {statistics.median(latencies) * ms:.1f} | |")
    print(f"| ACK latency p95 (ms) | {percentile(latencies, 95) * ms:.1f} | ≤ 100 |")
    print(f"| ACK latency max (ms) | {max(latencies) * ms:.1f} | |")
    print(
        f"| message to alert p50 (ms), 20 alerts | "
        f"{statistics.median(alert_latencies) * ms:.1f} | |"
    )
    print(f"| message to alert p95 (ms) | {percentile(alert_latencies, 95) * ms:.1f} | |")
    print(f"| lab API, single-sample POSTs, in-process (samples/s) | {len(api) / sum(api):.1f} | |")
    print(
        f"| lab API latency p50 / p95 (ms) | {statistics.median(api) * ms:.1f} / "
        f"{percentile(api, 95) * ms:.1f} | |"
    )
    print(f"| SQL queries per message, in-process | {queries:.1f} | |")
    print(f"| CPU ms per message (this process), in-process | {cpu_ms:.1f} | |")
    for size, (group_queries, group_cpu) in grouped.items():
        print(
            f"| in groups of {size} (group commit): queries / CPU ms per message | "
            f"{group_queries:.1f} / {group_cpu:.1f} | |"
        )
    if api_counted:
        print(f"| lab API: SQL queries per POST | {api_counted[0]:.1f} | |")
        print(f"| lab API: CPU ms per POST (this process) | {api_counted[1]:.1f} | |")
    if refused:
        print("\nFirst refusal:", refused[0])
    before = " ".join(f"{x:.2f}" for x in load_before)
    after = " ".join(f"{x:.2f}" for x in load_after)
    print(f"\nLoad average (1, 5, 15 min) before: {before}; after: {after}")
    print("\nMachine:")
    for key, value in machine().items():
        print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
