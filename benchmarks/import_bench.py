"""The import path at scale, next to PostgreSQL's COPY of the same rows, and the lab API's speed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carttrack_bench SECRET_KEY=x \\
        .venv/bin/python benchmarks/import_bench.py --patients 1000

Drops and recreates the database DATABASE_URL names (refusing one that holds real patients or
foreign tables, see bench_setup.py), migrates it, then:

  1. generates N patients with the demo cohort's generator (about 60 lab values each) and
     imports them through `imports.services.records_import`: every record checked with the
     models' validation, written in bulk with its audit history, each patient's alerts once;
  2. copies the clinical rows the import wrote out with COPY TO, empties the tables and loads
     the same rows back with COPY FROM (no validation, no history, no alerts): the floor;
  3. posts lab batches of 100, 1,000 and 5,000 samples (two values each: PB B cells and ALC,
     one sample per patient per batch, dated yesterday: news, not history) to
     /api/v1/lab-results/ in-process through Django's test client (token authentication, the
     full view, no network or gunicorn), and reports samples per second.

Peak RSS per step: Linux's high-water mark reset before each step (/proc/self/clear_refs).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_setup import database_recreate  # noqa: E402
from snapshot_10k import Bench, machine  # noqa: E402

CLINICAL = [
    "patients_patient",
    "patients_infusion",
    "patients_labresult",
    "patients_responseassessment",
    "patients_clinicalevent",
    "patients_preemptivetherapy",
]


def generate(n_patients: int, seed: int):
    from demo import cohort as demo

    rng = random.Random(seed)
    slots = demo.CR_GROUPS + ["no_cr"] * (demo.N_PATIENTS - demo.N_CR)
    groups = [slots[i % len(slots)] for i in range(n_patients)]
    rng.shuffle(groups)
    return [
        dataclasses.replace(demo._patient(rng, i % demo.N_PATIENTS, g), study_id=f"BENCH-{i:05d}")
        for i, g in enumerate(groups)
    ]


PHASES: dict[str, float] = {}


def _phase(phase: str, done: int, total: int) -> None:
    PHASES.setdefault(phase, time.perf_counter())


def import_cohort(cohort) -> dict:
    from demo.load import CENTERS, demo_batch
    from imports.services import records_import
    from patients.ingest.context import Scope
    from patients.models import Center, Patient

    centers = {
        code: Center.objects.get_or_create(code=code, defaults={"name": name, "time_zone": tz})[0]
        for code, name, tz in CENTERS
    }
    scope = Scope(user=None, patients=Patient.objects.all(), centers=centers)
    batch = demo_batch(cohort)
    PHASES["start"] = time.perf_counter()
    outcome = records_import(batch=batch, scope=scope, progress=_phase)
    PHASES["end"] = time.perf_counter()
    if not outcome.ok:
        sys.exit(f"import refused: {outcome.problems[:5]}")
    return {**outcome.counts, **{f"alerts {k}": v for k, v in outcome.alerts.items()}}


def copy_out() -> dict[str, bytes]:
    from django.db import connection

    data = {}
    with connection.cursor() as cursor:
        for table in CLINICAL:
            buffer = io.BytesIO()
            with cursor.connection.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for chunk in copy:
                    buffer.write(chunk)
            data[table] = buffer.getvalue()
    return data


def copy_in(data: dict[str, bytes]) -> int:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.connection
        for table in CLINICAL:
            with raw.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                copy.write(data[table])
    return sum(d.count(b"\n") for d in data.values())


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(CLINICAL)} CASCADE")


def api_client():
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from patients.models import ClinicianProfile
    from patients.roles import roles_ensure

    user = get_user_model().objects.create_user("lab-system", password=None, is_superuser=True)
    ClinicianProfile.objects.create(user=user, center=None)
    user.groups.add(roles_ensure()["clinician"])
    token = Token.objects.create(user=user).key
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def api_post(client, study_ids: list[str], size: int, when: datetime) -> tuple[float, int]:
    samples = [
        {
            "study_id": study_ids[i % len(study_ids)],
            "collected_at": (when + timedelta(seconds=i // len(study_ids))).isoformat(),
            "values": [
                {"analyte": "pb_bcell_abs", "value": "0", "unit": "cells/uL"},
                {"analyte": "alc", "value": "0.8", "unit": "10^9/L"},
            ],
        }
        for i in range(size)
    ]
    body = json.dumps({"samples": samples})
    started = time.perf_counter()
    response = client.post("/api/v1/lab-results/", body, content_type="application/json")
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        sys.exit(f"API batch of {size} refused: {response.status_code} {response.content[:500]}")
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12)
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("Set DATABASE_URL to a database of its own, e.g. .../carttrack_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")
    os.environ.setdefault("DEBUG", "False")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")

    bench = Bench()
    print(f"CARTtrack import benchmark, {options.patients} synthetic patients", flush=True)
    bench.step("setup: drop + create database", lambda: database_recreate(url))
    import django

    django.setup()
    from django.core.management import call_command

    bench.step("setup: migrate", lambda: call_command("migrate", verbosity=0))
    cohort = bench.step("setup: generate cohort", lambda: generate(options.patients, options.seed))
    counts = bench.step(
        "1. import path (records_import)",
        lambda: import_cohort(cohort),
        "validation + bulk write + audit history + each patient's alerts once",
    )

    data = bench.step("   COPY TO (capture the same rows)", copy_out)
    bench.step("   empty the tables", truncate)
    rows = bench.step(
        "2. COPY FROM (the same rows)", lambda: copy_in(data), "no checks, history, alerts"
    )
    from patients.models import Patient

    client = api_client()
    study_ids = list(Patient.objects.order_by("pk").values_list("study_id", flat=True))
    yesterday = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    api = []
    # One small request first: the URL configuration and the views are imported on first use.
    api_post(client, study_ids, 10, yesterday - timedelta(hours=5))
    for n, size in enumerate((100, 1000, 5000)):
        seconds, samples = bench.step(
            f"3. API batch of {size} samples",
            lambda size=size, n=n: api_post(
                client, study_ids, size, yesterday + timedelta(hours=n)
            ),
            "2 values per sample",
        )
        api.append((size, seconds))

    by_name = {name: seconds for name, seconds, _mb, _note in bench.rows}
    ratio = by_name["1. import path (records_import)"] / by_name["2. COPY FROM (the same rows)"]
    print()
    print(bench.table())
    print()
    print("| counts | |\n|---|---:|")
    for key, value in counts.items():
        print(f"| {key} | {value:,} |")
    print(f"| rows copied (clinical tables) | {rows:,} |")
    print(f"\nImport path / COPY: **{ratio:.1f}×**\n")
    marks = ["start", "checking", "writing", "alerts", "end"]
    names = ["lock + load facts", "check every record", "bulk write + history", "alerts once each"]
    print("| import phase | seconds |\n|---|---:|")
    for name, a, b in zip(names, marks, marks[1:], strict=False):
        print(f"| {name} | {PHASES[b] - PHASES[a]:.2f} |")
    print()
    print("| API batch (samples) | seconds | samples/s |\n|---:|---:|---:|")
    for size, seconds in api:
        print(f"| {size:,} | {seconds:.2f} | {size / seconds:,.0f} |")
    print("\nMachine:")
    for key, value in machine().items():
        print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
