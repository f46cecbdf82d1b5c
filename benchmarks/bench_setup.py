"""Setting up the benchmark database: a disposable CARTtrack database and a large synthetic
cohort stored fast (bulk_create: no per-row validation, no audit history, no alerts)."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import datetime
from datetime import time as clock
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from demo import cohort as demo_cohort

CLINICAL_TABLES_PREFIXES = (
    "patients_",
    "monitoring_",
    "analytics_",
    "imports_",
    "auth_",
    "authtoken_",
    "django_",
    "axes_",
    "audit_",
    "accounts_",
    "otp_",
)


# The database: refuse anything that is not a disposable CARTtrack database.


def _connection_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"DATABASE_URL must be a PostgreSQL URL, not {parts.scheme!r}")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "dbname": parts.path.lstrip("/"),
    }


def database_recreate(url: str) -> None:
    """Drop and create the benchmark database, after checking it holds nothing of value."""
    import psycopg
    from psycopg import sql

    kwargs = _connection_kwargs(url)
    name = kwargs["dbname"]
    if not name or name in ("postgres", "template0", "template1"):
        sys.exit(f"Refusing to use the database {name!r}: name a database of its own.")
    maintenance = {**kwargs, "dbname": "postgres"}
    with psycopg.connect(**maintenance, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists:
        with psycopg.connect(**kwargs) as target:
            tables = [
                row[0]
                for row in target.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            ]
            foreign = [t for t in tables if not t.startswith(CLINICAL_TABLES_PREFIXES)]
            if foreign:
                sys.exit(
                    f"Refusing to drop {name!r}: it holds tables that are not CARTtrack's "
                    f"({', '.join(sorted(foreign)[:5])}...)."
                )
            if "patients_patient" in tables:
                real = target.execute(
                    "SELECT count(*) FROM patients_patient WHERE NOT is_synthetic"
                ).fetchone()[0]
                if real:
                    sys.exit(
                        f"Refusing to drop {name!r}: it holds {real} non-synthetic patient(s)."
                    )
    with psycopg.connect(**maintenance, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --- the synthetic cohort ---------------------------------------------------------------------


def cohort_generate(n_patients: int, seed: int) -> Iterator[demo_cohort.DemoPatient]:
    """N patients from the demo generator, made one at a time (a 100,000-patient cohort is
    never held in memory at once); the same patients for the same seed, however they are
    consumed."""
    from demo import cohort as demo

    rng = random.Random(seed)
    # The demo's 55 slots (45 CR in the study's groups, 10 not in CR), repeated and shuffled.
    slots = demo.CR_GROUPS + ["no_cr"] * (demo.N_PATIENTS - demo.N_CR)
    groups = [slots[i % len(slots)] for i in range(n_patients)]
    rng.shuffle(groups)
    # The generator places patient `index` on the demo's calendar (one infusion every ~23 days
    # from March 2021, follow-up to mid-2026); index modulo 55 keeps every patient on it.
    for i, group in enumerate(groups):
        yield demo._patient(rng, i % demo.N_PATIENTS, group)


COHORT_CHUNK = 2000  # patients generated and written at a time: bounds the bulk load's memory


def cohort_store(n_patients: int, seed: int) -> dict[str, int]:
    """N patients from the demo generator, stored with bulk_create (no history, no alerts),
    `COHORT_CHUNK` patients at a time, so the memory it needs does not grow with N."""
    from demo.load import CENTERS
    from patients.models import Center

    centers = {
        code: Center.objects.create(code=code, name=name, time_zone=tz)
        for code, name, tz in CENTERS
    }
    counts = dict.fromkeys(("patients", "infusions", "labs", "responses", "events", "therapies"), 0)
    chunk: list = []
    for i, d in enumerate(cohort_generate(n_patients, seed)):
        chunk.append((i, d))
        if len(chunk) == COHORT_CHUNK:
            _chunk_store(chunk, centers, counts)
            chunk = []
    if chunk:
        _chunk_store(chunk, centers, counts)
    return counts


def _chunk_store(chunk, centers, counts: dict[str, int]) -> None:
    from patients import units
    from patients.models import (
        ClinicalEvent,
        Infusion,
        LabResult,
        Patient,
        PreemptiveTherapy,
        ResponseAssessment,
    )

    patients = Patient.objects.bulk_create(
        [
            Patient(
                center=centers[d.center_code],
                study_id=f"BENCH-{i + 1:05d}",
                sex=d.sex,
                date_of_birth=d.date_of_birth,
                ph_positive=d.ph_positive,
                is_synthetic=True,
            )
            for i, d in chunk
        ],
        batch_size=2000,
    )
    infusions, labs, responses, events, therapies = [], [], [], [], []
    for (_i, d), patient in zip(chunk, patients, strict=True):
        tz = centers[d.center_code].tzinfo
        infusions.append(
            Infusion(
                patient=patient,
                infusion_date=d.infusion_date,
                infusion_number=1,
                product=d.product,
                dose_cells_per_kg=d.dose,
            )
        )
        if d.second_infusion_day is not None:
            infusions.append(
                Infusion(
                    patient=patient,
                    infusion_date=d.on(d.second_infusion_day),
                    infusion_number=2,
                    product=d.product,
                    dose_cells_per_kg=d.dose,
                )
            )
        for lab in d.labs:
            analyte = units.ANALYTES[lab.analyte]
            labs.append(
                LabResult(
                    patient=patient,
                    analyte=lab.analyte,
                    specimen=analyte.specimen,
                    collected_at=datetime.combine(d.on(lab.day), clock(8, 30), tzinfo=tz),
                    value=lab.value,
                    unit=lab.unit,
                    qualifier=lab.qualifier,
                    canonical_value=(
                        None if lab.value is None else analyte.to_canonical(lab.value, lab.unit)
                    ),
                    canonical_unit=analyte.canonical_unit,
                    method=lab.method,
                )
            )
        responses += [
            ResponseAssessment(patient=patient, assessed_on=d.on(day), response=r, mrd_status=m)
            for day, r, m in d.responses
        ]
        events += [
            ClinicalEvent(patient=patient, kind=kind, event_date=d.on(day), **details)
            for day, kind, details in d.events
        ]
        therapies += [
            PreemptiveTherapy(
                patient=patient, start_date=d.on(day), category=c, agent=a, agent_detail=x
            )
            for day, c, a, x in d.therapies
        ]
    for key, model, rows in (
        ("infusions", Infusion, infusions),
        ("labs", LabResult, labs),
        ("responses", ResponseAssessment, responses),
        ("events", ClinicalEvent, events),
        ("therapies", PreemptiveTherapy, therapies),
    ):
        model.objects.bulk_create(rows, batch_size=5000)
        counts[key] += len(rows)
    counts["patients"] += len(patients)


def sample_validate(count: int) -> None:
    """full_clean() the records of the first patients, as load_demo_cohort would."""
    from patients.models import Patient

    for patient in Patient.objects.order_by("pk")[:count]:
        patient.full_clean()
        for related in ("infusions", "lab_results", "responses", "events", "therapies"):
            for record in getattr(patient, related).all():
                record.full_clean()


# The feed benchmarks (mllp.py, feed.py): patients in aplasia, a server on a free port.


def aplasia_cohort_store(center, n_patients: int, *, prefix: str, infused, with_mrn: bool):
    """N synthetic patients at `center`, infused on `infused`, each with an undetectable PB
    B-cell count on day 7 (aplasia documented): a detectable count before day 45 is then early
    regeneration. `with_mrn`: each gets MRN M<number> (the HL7 feed matches PID-3 by it)."""
    from datetime import UTC, timedelta

    from patients import units
    from patients.models import Infusion, LabResult, Patient

    patients = Patient.objects.bulk_create(
        [
            Patient(
                center=center,
                study_id=f"{prefix}-{i:05d}",
                sex="F",
                is_synthetic=True,
                **({"mrn": f"M{i:05d}"} if with_mrn else {}),
            )
            for i in range(n_patients)
        ],
        batch_size=5000,
    )
    Infusion.objects.bulk_create(
        [
            Infusion(patient=p, infusion_date=infused, infusion_number=1, product="CD19 CAR-T")
            for p in patients
        ],
        batch_size=5000,
    )
    aplasia = datetime.combine(infused + timedelta(days=7), clock.min, UTC)
    LabResult.objects.bulk_create(
        [
            LabResult(
                patient=p,
                analyte=units.PB_BCELL_ABS,
                specimen=units.PB,
                collected_at=aplasia + timedelta(hours=8),
                unit=units.CELLS_PER_UL,
                qualifier=units.UNDETECTABLE,
                canonical_unit=units.CELLS_PER_UL,
            )
            for p in patients
        ],
        batch_size=5000,
    )
    return patients


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_start(port: int, workers: int, *, cwd, env=None, output=None):
    """gunicorn serving carttrack.wsgi on 127.0.0.1:`port` (the caller waits for it)."""
    import subprocess
    from pathlib import Path

    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "carttrack.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        cwd=cwd,
        env=env,
        stdout=output if output is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
    )


def django_on_new_database(url: str, *, allowed_hosts: str = "testserver") -> None:
    """Recreate the benchmark database `url` names (see database_recreate), set Django up on it
    (DEBUG off) and migrate it."""
    import os

    if not url:
        sys.exit("Set DATABASE_URL to a database of its own, e.g. .../carttrack_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")
    os.environ.setdefault("DEBUG", "False")
    os.environ.setdefault("ALLOWED_HOSTS", allowed_hosts)
    database_recreate(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
