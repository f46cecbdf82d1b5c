"""Registry scale: every figure of issues 13 and 22 with its anchor and ratio, and each step's
peak memory, at 1,000, 10,000 (and 100,000) patients.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench13 \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 SECRET_KEY=x \\
        .venv/bin/python benchmarks/registry.py [--patients 1000 10000 100000] [--rebuild] \\
            [--workers 1 2] [--save figures.json] [--estimate 100000]

For each size N it builds (or reuses, when it already holds exactly N synthetic patients) the
database `<name>_<N>` with the snapshot benchmark's cohort (benchmarks/bench_setup.py, bulk_create,
no alerts), runs VACUUM ANALYZE after the bulk load (as autovacuum would on a production server),
then measures, in one process per size:

- the anchor: one SQL query with window functions that finds the early regenerators;
- the first sweep over the bulk-loaded registry (alerts removed first), with the notifications it
  queued (history is not news: expected 0), then the full sweep and the hourly sweep with nothing
  changed, each with its SQL query count; the hourly sweep again on a sample of 5 % of the
  patients (a registry in which 5 % are inside an open window);
- with --equality (default at N <= 1000): the per-patient path from the same state, compared
  alert by alert, event by event, notification by notification;
- the full sweep queued as Celery tasks (one per chunk of 1,000 patients) with 1 and 2 worker
  processes (needs BENCH_REDIS_URL; a private queue);
- the dashboard snapshot next to `Rscript scripts/reproduce_headline.R` on its exported CSV, and
  the CSV export itself;
- the import path: min(1,000, N/10) new synthetic patients through `records_import` (as
  history, nobody notified), rolled back, next to COPY of the same clinical rows (rolled back).

Each step's peak RSS: the process's high-water mark reset before the step (/proc/self/clear_refs)
and VmHWM read after it (getrusage's lifetime peak where that is refused, said so). The bulk
load writes 2,000 patients at a time (bench_setup.cohort_store), so its memory does not grow with
N. It prints one Markdown table per size (measure, CARTtrack, anchor, ratio, peak RSS), the date,
the machine and the load average; with several sizes a growth table (each figure per size, its
growth and shape); below --estimate patients (100,000) an estimate of a run at that size.
Refuses to drop a database holding non-synthetic patients (bench_setup).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_setup import COHORT_CHUNK  # noqa: E402
from snapshot_10k import _peak_mb, _peak_reset  # noqa: E402

# The early regenerators as one SQL query: per infusion window (up to the next infusion), PB
# B-cell absolute counts from day 1 (in the center's time zone), the first detectable count after
# an undetectable one, on day <= 45. The count of distinct patients.
EARLY_REGENERATORS_SQL = """
WITH windows AS (
    SELECT i.id, i.patient_id, i.infusion_date,
           lead(i.infusion_date) OVER (PARTITION BY i.patient_id ORDER BY i.infusion_date)
               AS next_date
    FROM patients_infusion i
), counts AS (
    SELECT w.id AS window_id, w.patient_id,
           (l.collected_at AT TIME ZONE c.time_zone)::date - w.infusion_date AS day,
           l.collected_at, l.id AS result_id,
           (l.qualifier = '' AND l.canonical_value > 0) AS detectable
    FROM patients_labresult l
    JOIN patients_patient p ON p.id = l.patient_id
    JOIN patients_center c ON c.id = p.center_id
    JOIN windows w ON w.patient_id = l.patient_id
    WHERE l.analyte = 'pb_bcell_abs' AND l.specimen = 'PB'
      AND (l.collected_at AT TIME ZONE c.time_zone)::date > w.infusion_date
      AND (w.next_date IS NULL OR (l.collected_at AT TIME ZONE c.time_zone)::date < w.next_date)
), marked AS (
    SELECT *, bool_or(NOT detectable) OVER (
        PARTITION BY window_id ORDER BY collected_at, result_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS after_aplasia
    FROM counts
), onsets AS (
    SELECT patient_id, day,
           row_number() OVER (PARTITION BY window_id ORDER BY collected_at, result_id) AS nth
    FROM marked WHERE detectable AND after_aplasia
)
SELECT count(DISTINCT patient_id) FROM onsets WHERE nth = 1 AND day <= 45
"""


def _url_for(url: str, size: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_{size}"))


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _queries(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        seconds, result = _timed(fn)
    return seconds, len(captured), result


# Every measured step of this process: name -> [seconds, peak RSS MB during it, RSS MB at its
# start, whether the peak is the step's own (False: clear_refs refused, the process's lifetime
# peak so far)].
STEPS: dict[str, list] = {}


def _rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _step(name: str, fn, *, queries: bool = False):
    """Run one measured step: its wall time and the process's peak RSS during it (Linux: the
    high-water mark reset before it through /proc/self/clear_refs, VmHWM read after it; where
    that is refused, getrusage's lifetime peak, said so in the table) go to STEPS[name].
    Returns _timed's answer, or _queries' with `queries`."""
    start_mb = _rss_mb()
    own = _peak_reset()
    answer = _queries(fn) if queries else _timed(fn)
    STEPS[name] = [answer[0], _peak_mb(), start_mb, own]
    return answer


# --- one size, in its own process -------------------------------------------------------------


def _prepare(size: int, seed: int, rebuild: bool) -> dict:
    from bench_setup import _connection_kwargs, cohort_store, database_recreate

    url = os.environ["DATABASE_URL"]
    reuse = False
    if not rebuild:
        import psycopg

        try:
            with psycopg.connect(**_connection_kwargs(url)) as conn:
                n = conn.execute(
                    "SELECT count(*) FROM patients_patient WHERE is_synthetic"
                ).fetchone()[0]
                total = conn.execute("SELECT count(*) FROM patients_patient").fetchone()[0]
                labs = conn.execute("SELECT count(*) FROM patients_labresult").fetchone()[0]
                reuse = n == total == size and labs > 0
        except psycopg.Error:
            reuse = False
    setup: dict = {"reused": reuse}
    if not reuse:
        database_recreate(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not reuse:
        from django.db import transaction

        def build():
            with transaction.atomic():  # a build cut short leaves nothing to reuse
                return cohort_store(size, seed)

        setup["bulk load s"], setup["rows"] = _step("bulk load", build)
    from django.db import connection

    with connection.cursor() as cursor:
        seconds, _ = _step("VACUUM ANALYZE", lambda: cursor.execute("VACUUM ANALYZE"))
    setup["analyze s"] = seconds
    return setup


def _state() -> dict:
    from monitoring.models import Alert, AlertEvent, Notification

    keys = {
        pk: (patient, infusion, rule)
        for pk, patient, infusion, rule in Alert.objects.values_list(
            "pk", "patient_id", "infusion_id", "rule"
        )
    }
    fields = (
        "pk",
        "severity",
        "status",
        "title",
        "day",
        "evidence",
        "details",
        "params",
        "rule_version",
        "historical",
        "withdrawn_reason",
    )
    return {
        "alerts": sorted(
            (keys[row[0]], *[json.dumps(v, sort_keys=True, default=str) for v in row[1:]])
            for row in Alert.objects.values_list(*fields)
        ),
        "events": sorted(
            (keys[a], o, n, r)
            for a, o, n, r in AlertEvent.objects.values_list(
                "alert_id", "old_status", "new_status", "reason"
            )
        ),
        "notifications": sorted(
            (keys[a], r) for a, r in Notification.objects.values_list("alert_id", "recipient_id")
        ),
    }


def _alerts_clear() -> None:
    from django.db import connection

    with connection.cursor() as cursor:  # as after a bulk load: nothing evaluated yet
        cursor.execute(
            "TRUNCATE monitoring_notification, monitoring_alertevent, monitoring_alert CASCADE"
        )


@contextlib.contextmanager
def _celery_worker(workers: int, redis_url: str):
    """A Celery worker with `workers` prefork processes on a private queue, the tasks this
    process sends going to it; stopped on exit."""
    queue = f"bench13-{os.getpid()}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "False",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "carttrack",
            "worker",
            "-Q",
            queue,
            "--concurrency",
            str(workers),
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from carttrack.celery import app

    eager = app.conf.task_always_eager
    try:
        app.conf.task_default_queue = queue
        app.conf.task_always_eager = False
        deadline = time.time() + 60
        while not app.control.ping(destination=[f"{queue}@{platform.node()}"], timeout=1):
            if time.time() > deadline or worker.poll() is not None:
                raise RuntimeError("the Celery worker did not start")
        yield
    finally:
        app.conf.task_always_eager = eager
        worker.terminate()
        worker.wait(30)


def _celery_sweep(workers: int, redis_url: str, size: int) -> float:
    """Full sweep queued as chunk tasks, run by a Celery worker with `workers` processes."""
    with _celery_worker(workers, redis_url):
        from monitoring.tasks import sweep_dispatch

        started = time.perf_counter()
        # Chunks of 1,000 patients (the default) at 10,000; eight chunks for smaller registries.
        result = sweep_dispatch(scope="all", size=min(1000, max(50, size // 8)))
        result.get(timeout=_wait_s(size), disable_sync_subtasks=False)
        return time.perf_counter() - started


def _wait_s(size: int) -> float:
    """How long to wait for a Celery job over `size` patients before calling it lost: half an
    hour, or 100 ms per patient (10,000 s at 100,000, where one worker measured at 10,000
    needs about a tenth of that)."""
    return max(1800.0, 0.1 * size)


def _celery_snapshots(workers: int, redis_url: str, size: int) -> tuple[float, int]:
    """The nightly dashboard refresh (`snapshots_refresh_all`: the registry and each center,
    each its own task) run by a Celery worker with `workers` processes: (seconds until every
    run finished, runs)."""
    from django.db import transaction

    from analytics.models import RefreshRun
    from analytics.services import snapshots_refresh_all

    with _celery_worker(workers, redis_url):
        RefreshRun.objects.all().delete()
        started = time.perf_counter()
        with transaction.atomic():  # queued when this commits, as in the nightly task
            runs = snapshots_refresh_all()
        ids = [run.pk for run in runs]
        wait = 2 * _wait_s(size)
        deadline = time.monotonic() + wait
        while RefreshRun.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the nightly snapshots did not finish in {wait:.0f} s")
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        failed = RefreshRun.objects.filter(pk__in=ids).exclude(error="").count()
        if failed:
            raise RuntimeError(f"{failed} nightly snapshot runs failed")
        return seconds, len(ids)


PROBES = {"snapshot": "a dashboard snapshot", "full sweep": "the full (nightly) sweep"}


def _probe_run(step: str) -> None:
    """In a fresh process (Django set up, the step's modules imported): the step alone, its
    seconds, its peak RSS and the RSS before it, as a Celery worker doing only that job."""
    import django

    django.setup()
    if step == "snapshot":
        from analytics.services import snapshot_compute

        fn = lambda: snapshot_compute(options={})  # noqa: E731
    else:
        from monitoring import sweep

        fn = sweep.sweep_all
    _step(step, fn)
    print("PROBE " + json.dumps(STEPS[step]))


def _probe(step: str) -> list:
    """[seconds, peak RSS MB, RSS MB before, own peak] of `step` run alone in a fresh process:
    the in-process peak also holds what earlier steps left on the heap."""
    child = subprocess.run(
        [sys.executable, __file__, "--probe", step],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ,
    )
    line = next((x for x in child.stdout.splitlines() if x.startswith("PROBE ")), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"the {step} probe failed:\n{child.stderr[-3000:]}")
    return json.loads(line.removeprefix("PROBE "))


# The clinical tables an import writes, as COPY writes them for the anchor.
CLINICAL_TABLES = (
    ("patients_patient", "id"),
    ("patients_infusion", "patient_id"),
    ("patients_labresult", "patient_id"),
    ("patients_responseassessment", "patient_id"),
    ("patients_clinicalevent", "patient_id"),
    ("patients_preemptivetherapy", "patient_id"),
)


class _Undo(Exception):
    """Raised at the end of a measured transaction: nothing it wrote stays."""


def import_size(size: int) -> int:
    """How many new patients the import step brings: a tenth of the registry, at most 1,000
    (a large hospital's backfill)."""
    return max(1, min(1000, size // 10))


def _import_vs_copy(size: int, seed: int) -> dict:
    """K new synthetic patients (bench_setup's generator, another seed, study IDs IMPORT-...)
    with their infusions, lab values, responses, events and therapies, through the one import
    path (`records_import`, as history, nobody notified) inside a transaction that is rolled
    back; then PostgreSQL COPY of exactly the clinical rows it wrote, into the same tables, in a
    transaction also rolled back (the anchor: no checks, no audit history, no alerts)."""
    import dataclasses

    from bench_setup import cohort_generate
    from django.db import connection, transaction

    from demo.load import demo_batch
    from imports.services import records_import
    from patients.ingest.context import Scope
    from patients.models import Center, Patient

    k = import_size(size)
    cohort = [
        dataclasses.replace(d, study_id=f"IMPORT-{i + 1:05d}")
        for i, d in enumerate(cohort_generate(k, seed + 1))
    ]
    batch = demo_batch(cohort)
    del cohort
    scope = Scope(
        user=None,
        patients=Patient.objects.all(),
        centers={c.code: c for c in Center.objects.all()},
    )
    figures: dict = {"patients": k}
    data: dict[str, bytes] = {}
    try:
        with transaction.atomic():
            seconds, outcome = _step(
                "import path",
                lambda: records_import(batch=batch, scope=scope, history=True, notify=False),
            )
            if not outcome.ok:
                raise RuntimeError(f"the import refused the batch: {outcome.problems[:5]}")
            figures["import s"] = seconds
            figures["alerts"] = dict(outcome.alerts)
            ids = list(
                Patient.objects.filter(study_id__startswith="IMPORT-").values_list("pk", flat=True)
            )
            listed = "{" + ",".join(map(str, ids)) + "}"  # integers from the database
            with connection.cursor() as cursor:
                for table, column in CLINICAL_TABLES:
                    buffer = bytearray()
                    statement = (
                        f"COPY (SELECT * FROM {table} WHERE {column} = ANY('{listed}'::bigint[]))"
                        " TO STDOUT"
                    )
                    with cursor.connection.cursor().copy(statement) as copy:
                        for chunk in copy:
                            buffer += chunk
                    data[table] = bytes(buffer)
            raise _Undo
    except _Undo:
        pass
    figures["rows"] = {table: data[table].count(b"\n") for table in data}

    def copy_in():
        with connection.cursor() as cursor:
            for table, _column in CLINICAL_TABLES:
                with cursor.connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data[table])

    try:
        with transaction.atomic():
            figures["copy s"], _ = _step("COPY", copy_in)
            raise _Undo
    except _Undo:
        pass
    return figures


def measure(size: int, options) -> dict:
    load_before = os.getloadavg()[0]
    setup = _prepare(size, options.seed, options.rebuild)
    from django.db import connection

    from monitoring import sweep
    from monitoring.models import Alert, Notification
    from patients.models import LabResult

    figures: dict = {"size": size, "setup": setup, "labs": LabResult.objects.count()}
    # The bulk load wrote the records straight into the tables: each patient's stored analysis
    # row (analytics.derived) is built once, as the nightly check does (a write keeps it current
    # in its own transaction), so the snapshots below read the rows as a live registry has them.
    from analytics.derived import derived_facts_verify

    figures["derived s"], differences = _step(
        "derived rows built", lambda: derived_facts_verify(fix=True)
    )
    figures["derived rows"] = len({d.study_id for d in differences})
    with connection.cursor() as cursor:
        anchor_seconds, _ = _step("anchor", lambda: cursor.execute(EARLY_REGENERATORS_SQL))
        (figures["sql early regenerators"],) = cursor.fetchone()
    figures["anchor s"] = anchor_seconds

    _alerts_clear()
    seconds, queries, counts = _step("first sweep", sweep.sweep_all, queries=True)
    figures["first sweep"] = (seconds, queries, counts)
    figures["first sweep notifications"] = Notification.objects.count()
    figures["engine early regenerators"] = (
        Alert.objects.filter(rule="early_regeneration").values("patient_id").distinct().count()
    )
    figures["full sweep"] = _step("full sweep", sweep.sweep_all, queries=True)
    figures["hourly sweep"] = _step("hourly sweep", sweep.sweep_time_sensitive, queries=True)
    ids = sweep.all_patient_ids()
    sample = ids[::20]  # 5 %
    figures["hourly 5% sample"] = _step(
        "hourly 5% sample", lambda: sweep.sweep_patients(sample), queries=True
    )

    if options.equality if options.equality is not None else size <= 1000:
        bulk = _state()
        _alerts_clear()  # the per-patient path from the bulk-loaded state, like the first sweep
        seconds, queries, counts = _step(
            "per-patient first sweep", _sweep_per_patient, queries=True
        )
        figures["per-patient first sweep"] = (seconds, queries, counts)
        figures["equal to per-patient"] = _state() == bulk
    if options.redis_url:
        for workers in options.workers:
            figures[f"celery {workers}"] = _celery_sweep(workers, options.redis_url, size)
            STEPS[f"celery {workers}"] = [figures[f"celery {workers}"], None, None, True]
        for workers in options.workers:
            figures[f"snapshots {workers}"] = answer = _celery_snapshots(
                workers, options.redis_url, size
            )
            STEPS[f"snapshots {workers}"] = [answer[0], None, None, True]

    from analytics.dataset import analysis_csv, analysis_frame
    from analytics.services import snapshot_compute

    figures["snapshot s"], _ = _step("snapshot", lambda: snapshot_compute(options={}))
    csv_path = Path(tempfile.mkdtemp(prefix="bench13-")) / "analysis.csv"
    # What /dashboard/export.csv does: the analysis table from the database, as CSV text.
    figures["export s"], text = _step("CSV export", lambda: analysis_csv(analysis_frame()))
    csv_path.write_text(text)
    del text
    figures["probes"] = {step: _probe(step) for step in PROBES}
    figures["R s"], _ = _timed(
        lambda: subprocess.run(
            ["Rscript", str(ROOT / "scripts" / "reproduce_headline.R"), str(csv_path)],
            check=True,
            capture_output=True,
        )
    )
    STEPS["R"] = [figures["R s"], None, None, True]  # another process: its memory is not ours
    from page_weight import dashboard_weight

    figures["weight"] = dashboard_weight()
    figures["import"] = _import_vs_copy(size, options.seed)
    figures["steps"] = STEPS
    figures["load average"] = [load_before, os.getloadavg()[0]]
    return figures


# --- the report ---------------------------------------------------------------------------------


def _ratio(value: float, anchor: float) -> str:
    return f"{value / anchor:.1f}×" if anchor else "—"


def _mb(f: dict, step: str) -> str:
    """The peak RSS column: peak during the step (its growth over the RSS at the step's start)."""
    figure = f.get("steps", {}).get(step)
    if not figure or figure[1] is None:
        return "—"
    _seconds, peak, start, _own = figure
    grown = f" (+{max(0.0, peak - start):,.0f})" if start is not None else ""
    return f"{peak:,.0f}{grown}"  # the RSS can shrink a little during a step: +0 then


MEMORY_TARGET_MB = 1024  # issue 22: snapshot and sweep within 1 GB at 100,000 patients


def table(f: dict) -> str:
    anchor = f["anchor s"]
    regen = f"{f['sql early regenerators']} early regenerators: {anchor:.2f} s"
    lines = [
        f"### {f['size']:,} patients ({f['labs']:,} lab results)",
        "",
        "| measure | CARTtrack | anchor | ratio | peak RSS MB (+ over the step's start) |",
        "|---|---|---|---|---:|",
    ]
    setup = f["setup"]
    if not setup["reused"]:
        rows = setup["rows"]
        lines.append(
            f"| bulk load (bulk_create, {COHORT_CHUNK:,} patients at a time, one transaction;"
            f" {sum(rows.values()):,} rows) | {setup['bulk load s']:.2f} s | — | — |"
            f" {_mb(f, 'bulk load')} |"
        )
    lines.append(
        f"| VACUUM ANALYZE after the load | {setup['analyze s']:.2f} s | — | — |"
        f" {_mb(f, 'VACUUM ANALYZE')} |"
    )
    lines.append(
        f"| anchor: SQL window query (early regenerators) | {anchor:.2f} s | — | — |"
        f" {_mb(f, 'anchor')} |"
    )

    def sweep_row(label, key, target=""):
        seconds, queries, counts = f[key]
        lines.append(
            f"| {label} | {seconds:.2f} s, {queries:,} queries, {counts['patients']:,} patients "
            f"evaluated, {counts['changed']:,} alerts changed | SQL window query, {regen} | "
            f"{_ratio(seconds, anchor)}{target} | {_mb(f, key)} |"
        )

    sweep_row(
        "hourly sweep, nothing changed (patients the clock can change)",
        "hourly sweep",
        " (target 2×)",
    )
    sweep_row(
        "hourly sweep if 5 % of patients were in an open window", "hourly 5% sample", " (target 2×)"
    )
    sweep_row("full (nightly) sweep, nothing changed", "full sweep", " (target 20×)")
    sweep_row("first sweep over the bulk-loaded registry", "first sweep")
    lines.append(
        f"| notifications queued by the first sweep (history) | {f['first sweep notifications']}"
        " | 0 | — | — |"
    )
    lines.append(
        f"| early regenerators: engine vs SQL | {f['engine early regenerators']} | "
        f"{f['sql early regenerators']} | — | — |"
    )
    if "per-patient first sweep" in f:
        seconds, queries, _ = f["per-patient first sweep"]
        first = f["first sweep"][0]
        lines.append(
            f"| per-patient path (old sweep), first sweep | {seconds:.2f} s, {queries:,} queries"
            f" | bulk first sweep {first:.2f} s | {_ratio(seconds, first)} |"
            f" {_mb(f, 'per-patient first sweep')} |"
        )
        lines.append(
            f"| bulk result equals the per-patient path | {f['equal to per-patient']} | — | — | — |"
        )
    one = f.get("celery 1")
    for key in sorted(k for k in f if k.startswith("celery ")):
        workers = key.split()[1]
        lines.append(
            f"| full sweep as Celery chunk tasks, {workers} worker process(es) | {f[key]:.2f} s |"
            f" 1 worker {one:.2f} s | {_ratio(f[key], one)} | — (worker processes) |"
            if one
            else f"| full sweep as Celery tasks, {workers} worker(s) | {f[key]:.2f} s | — | — |"
            " — (worker processes) |"
        )
    one = f.get("snapshots 1")
    for key in sorted(k for k in f if k.startswith("snapshots ")):
        workers = key.split()[1]
        seconds, runs = f[key]
        lines.append(
            f"| nightly dashboard refresh ({runs} snapshots: registry and centers) as Celery "
            f"tasks, {workers} worker process(es) | {seconds:.2f} s | "
            + (f"1 worker {one[0]:.2f} s | {_ratio(seconds, one[0])} |" if one else "— | — |")
            + " — (worker processes) |"
        )
    weight = f["weight"]
    lines.append(
        f"| dashboard, first view (page, plotly.js, CSS, JS, figures JSON; compressed) | "
        f"{weight['first view'] / 1e6:.2f} MB | target 1.5 MB | "
        f"{_ratio(weight['first view'], 1.5e6)} | — |"
    )
    lines.append(
        f"| dashboard, repeat view (hashed static files and the snapshot's JSON cached) | "
        f"{weight['repeat view'] / 1e3:.1f} KB | target 200 KB | "
        f"{_ratio(weight['repeat view'], 200e3)} | — |"
    )
    figures_json = next((v for k, v in weight["assets"].items() if k.endswith(".json")), None)
    if figures_json:
        lines.append(
            f"| figures JSON of the snapshot ({figures_json[1]}) | "
            f"{figures_json[0] / 1e3:.0f} KB | — | — | — |"
        )
    lines.append(
        f"| dashboard snapshot | {f['snapshot s']:.2f} s | R `survival` on the exported CSV: "
        f"{f['R s']:.2f} s | {_ratio(f['snapshot s'], f['R s'])} (target ≤ 1×) |"
        f" {_mb(f, 'snapshot')} |"
    )
    if "derived s" in f:
        lines.append(
            f"| stored analysis rows built after the bulk load (derived_facts_verify --fix, "
            f"{f['derived rows']:,} patients) | {f['derived s']:.2f} s | — | — |"
            f" {_mb(f, 'derived rows built')} |"
        )
    lines.append(
        f"| CSV export (analysis_frame + analysis_csv, as /dashboard/export.csv) |"
        f" {f['export s']:.2f} s | — | — | {_mb(f, 'CSV export')} |"
    )
    for step, label in PROBES.items():
        probe = f.get("probes", {}).get(step)
        if probe:
            seconds, peak, start, _own = probe
            lines.append(
                f"| {label} alone in a fresh process (as a worker doing only that job) |"
                f" {seconds:.2f} s | — | — | {peak:,.0f} (+{max(0.0, peak - start):,.0f}) |"
            )
    imported = f["import"]
    rows = sum(imported["rows"].values())
    lines.append(
        f"| import path: {imported['patients']:,} new patients, {rows:,} clinical rows"
        f" ({imported['rows']['patients_labresult']:,} lab values), `records_import` as history,"
        f" rolled back | {imported['import s']:.2f} s | COPY of the same {rows:,} rows into the"
        f" same tables, rolled back: {imported['copy s']:.2f} s |"
        f" {_ratio(imported['import s'], imported['copy s'])} (target ≤ 5×) |"
        f" {_mb(f, 'import path')}; COPY {_mb(f, 'COPY')} |"
    )
    capacity = [
        (f"full (nightly) sweep as chunk tasks, {k.split()[1]} worker process(es)", f[k], k)
        for k in sorted(k for k in f if k.startswith("celery "))
    ] + [
        (
            f"nightly dashboard refresh, {f[k][1]} snapshots, {k.split()[1]} worker process(es)",
            f[k][0],
            k,
        )
        for k in sorted(k for k in f if k.startswith("snapshots "))
    ]
    if capacity:
        lines += [
            "",
            "Capacity (patients per worker-minute: patients ÷ minutes ÷ worker processes):",
            "",
            "| job | patients | minutes | patients per worker-minute |",
            "|---|---:|---:|---:|",
        ]
        for label, seconds, key in capacity:
            workers = int(key.split()[1])
            rate = f["size"] / (seconds / 60) / workers if seconds else 0
            lines.append(f"| {label} | {f['size']:,} | {seconds / 60:.2f} | {rate:,.0f} |")
    lines.append("")
    lines.append(
        "Setup: "
        + ("database reused" if setup["reused"] else f"bulk load {setup['bulk load s']:.1f} s")
        + f", VACUUM ANALYZE {setup['analyze s']:.1f} s."
        + (
            " Load average (1 min) at the start and the end of this size: "
            f"{f['load average'][0]:.2f}, {f['load average'][1]:.2f}."
            if "load average" in f
            else ""
        )
        + (f" Whole run of this size: {f['run s']:.0f} s." if "run s" in f else "")
    )
    steps = f.get("steps", {})
    peaks = {k: steps[k][1] for k in ("snapshot", "full sweep", "first sweep") if k in steps}
    peaks.update({f"{k} alone": v[1] for k, v in f.get("probes", {}).items()})
    if peaks:
        own = all(figure[3] for figure in steps.values())
        lines.append(
            "Peak RSS of this process"
            + ("" if own else " (lifetime peak so far: /proc/self/clear_refs was refused)")
            + ", target ≤ 1 GB at 100,000 patients: "
            + ", ".join(
                f"{k} {mb:,.0f} MB ({'within' if mb <= MEMORY_TARGET_MB else 'over'})"
                for k, mb in peaks.items()
            )
            + "."
        )
    return "\n".join(lines)


# The growth table and the estimate: each measure's label and where its figure is.
GROWTH_MEASURES = (
    ("bulk load", "bulk load"),
    ("VACUUM ANALYZE", "VACUUM ANALYZE"),
    ("anchor (SQL window query)", "anchor"),
    ("first sweep", "first sweep"),
    ("full (nightly) sweep", "full sweep"),
    ("hourly sweep, nothing changed", "hourly sweep"),
    ("hourly sweep, 5 % of patients", "hourly 5% sample"),
    ("per-patient first sweep", "per-patient first sweep"),
    ("full sweep, Celery, 1 worker process", "celery 1"),
    ("full sweep, Celery, 2 worker processes", "celery 2"),
    ("nightly dashboard refresh, 1 worker process", "snapshots 1"),
    ("nightly dashboard refresh, 2 worker processes", "snapshots 2"),
    ("stored analysis rows built (derived_facts_verify --fix)", "derived rows built"),
    ("dashboard snapshot", "snapshot"),
    ("R on the exported CSV", "R"),
    ("CSV export", "CSV export"),
    ("import path (K new patients)", "import path"),
    ("COPY of the same rows", "COPY"),
)
IMPORT_STEPS = ("import path", "COPY")  # these scale with K = import_size(N), not with N


def _shape(exponent: float) -> str:
    if exponent < 0.8:
        return "less than linear"
    if exponent <= 1.2:
        return "linear"
    return "**worse than linear**"


def _scale(f: dict, step: str) -> int:
    return import_size(f["size"]) if step in IMPORT_STEPS else f["size"]


def growth(runs: list[dict]) -> str:
    """Each measure at each size and its growth from the previous size, with its shape: the
    exponent k in figure ∝ size^k (1 is linear; the import steps against K, the patients they
    bring)."""
    import math

    sizes = [f["size"] for f in runs]
    head = " | ".join(f"{n:,}" for n in sizes)
    lines = [
        "### Growth with the registry's size",
        "",
        "Each figure at each size, then its growth from the previous size (× and the shape:"
        " k in figure ∝ patients^k; 0.8 ≤ k ≤ 1.2 is called linear). Times are seconds, memory"
        " the step's peak RSS in MB; the import steps grow with K = min(1,000, N/10), the"
        " patients they bring, not with N.",
        "",
        f"| measure | {head} | growth |",
        "|---|" + "---:|" * len(sizes) + "---|",
    ]

    def row(label, values, scales):
        present = [(v, n) for v, n in zip(values, scales, strict=True) if v is not None]
        cells = " | ".join("—" if v is None else f"{v:,.2f}" for v in values)
        steps = []
        for (a, na), (b, nb) in zip(present, present[1:], strict=False):
            if a > 0 and b > 0 and nb != na:
                k = math.log(b / a) / math.log(nb / na)
                steps.append(f"{b / a:.1f}× for {nb / na:.0f}× ({_shape(k)}, k = {k:.2f})")
            elif a > 0 and b > 0:
                steps.append(f"{b / a:.1f}× at the same K")
        lines.append(f"| {label} | {cells} | {'; '.join(steps) or '—'} |")

    for label, step in GROWTH_MEASURES:
        seconds = [f.get("steps", {}).get(step, [None])[0] for f in runs]
        if any(v is not None for v in seconds):
            row(f"{label}, s", seconds, [_scale(f, step) for f in runs])
    for label, step in GROWTH_MEASURES:
        mb = [(f.get("steps", {}).get(step) or [None, None])[1] for f in runs]
        if any(v is not None for v in mb):
            row(f"{label}, peak RSS MB", mb, [_scale(f, step) for f in runs])
    for step, label in PROBES.items():
        probes = [f.get("probes", {}).get(step) for f in runs]
        if any(probes):
            row(f"{label} alone, fresh process, s", [p and p[0] for p in probes], sizes)
            row(f"{label} alone, fresh process, peak RSS MB", [p and p[1] for p in probes], sizes)
    row("whole run of one size (this table's process), s", [f.get("run s") for f in runs], sizes)
    return "\n".join(lines)


def estimate(runs: list[dict], target: int) -> str:
    """How long a run at `target` patients would take, and its snapshot's and sweeps' peak
    memory: each step scaled from the largest size measured by its own exponent from the two
    largest sizes (at least linear: a smaller exponent at small sizes is fixed costs, which a
    larger registry does not keep), linearly when only one size ran. The rest of the run
    (migrate, collectstatic, the page weight, Celery workers starting) is taken as it is: it
    does not grow with the registry."""
    import math

    last = runs[-1]
    before = runs[-2] if len(runs) > 1 else None
    basis = (
        f"from {before['size']:,} and {last['size']:,} patients"
        if before
        else f"linearly from {last['size']:,} patients (one size: a lower bound if any step"
        " grows worse than linearly)"
    )
    lines = [
        f"### Estimate for {target:,} patients ({basis})",
        "",
        "| step | measured at the largest size, s | estimated, s |",
        "|---|---:|---:|",
    ]
    total = 0.0
    for label, step in GROWTH_MEASURES:
        figure = last.get("steps", {}).get(step)
        if not figure or (step == "per-patient first sweep" and target > 1000):
            continue  # the per-patient comparison is off above 1,000 patients by default
        n2 = _scale(last, step)
        n_target = import_size(target) if step in IMPORT_STEPS else target
        k = 1.0
        if before and before.get("steps", {}).get(step):
            t1, n1 = before["steps"][step][0], _scale(before, step)
            if t1 > 0 and figure[0] > 0 and n2 != n1:
                k = min(2.0, max(1.0, math.log(figure[0] / t1) / math.log(n2 / n1)))
        seconds = figure[0] * (n_target / n2) ** k
        total += seconds
        lines.append(f"| {label} | {figure[0]:,.2f} | {seconds:,.0f} |")
    for step, label in PROBES.items():  # the fresh-process runs of the snapshot and the sweep
        a, b = (before or {}).get("probes", {}).get(step), last.get("probes", {}).get(step)
        if b:
            k = 1.0
            if a and a[0] > 0 and b[0] > 0:
                k = min(
                    2.0, max(1.0, math.log(b[0] / a[0]) / math.log(last["size"] / before["size"]))
                )
            seconds = b[0] * (target / last["size"]) ** k
            total += seconds
            lines.append(f"| {label} alone, fresh process | {b[0]:,.2f} | {seconds:,.0f} |")
    measured = sum(v[0] for v in last["steps"].values())
    measured += sum(v[0] for v in last.get("probes", {}).values())
    rest = max(0.0, (last.get("run s") or 0.0) - measured)
    total += rest
    if "bulk load" not in last["steps"]:
        lines.append("| bulk load: not measured (database reused; run with --rebuild) | | |")
    lines.append(
        f"| the rest (migrate, collectstatic, page weight, processes starting), as measured |"
        f" {rest:,.0f} | {rest:,.0f} |"
    )
    lines.append(
        f"| **whole run** | {last.get('run s') or 0:,.0f} |"
        f" **{total:,.0f} ({total / 3600:.1f} h)** |"
    )
    if before and before["size"] < 1000:
        lines += ["", "Peak RSS not extrapolated: sizes below 1,000 patients say little about it."]
    elif before:
        memory = []
        candidates = [
            (f"{s} alone", before.get("probes", {}).get(s), last.get("probes", {}).get(s))
            for s in PROBES
        ]
        candidates += [
            (s, before["steps"].get(s), last["steps"].get(s))
            for s in ("snapshot", "full sweep", "first sweep", "bulk load")
        ]
        for step, a, b in candidates:
            if a and b and a[1] is not None and b[1] is not None:
                slope = (b[1] - a[1]) / (last["size"] - before["size"])
                mb = b[1] + max(0.0, slope) * (target - last["size"])
                verdict = (
                    ""
                    if step == "bulk load"
                    else " (within 1 GB)"
                    if mb <= MEMORY_TARGET_MB
                    else " (**over 1 GB**)"
                )
                memory.append(f"{step} {mb:,.0f} MB{verdict}")
        if memory:
            lines += [
                "",
                f"Peak RSS at {target:,} patients, extrapolated linearly from the growth between"
                " the two largest sizes (the in-process figures also carry"
                " what earlier steps left on the heap, the bulk load's chunk among them, which"
                " is 1,000 patients at 1,000 and 2,000 above, so they overstate the growth;"
                " 'alone' is the step in a fresh process): " + ", ".join(memory) + ".",
            ]
    return "\n".join(lines)


def machine() -> str:
    def run(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "n/a"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {run(['nproc'])} CPUs, {cpu}; "
        f"Python {platform.python_version()}; {platform.platform()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if reusable")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--equality",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare with the per-patient path (default: at 1,000 patients or fewer)",
    )
    parser.add_argument(
        "--estimate",
        type=int,
        default=100_000,
        help="estimate the time of a run at this many patients (when the sizes run are smaller)",
    )
    parser.add_argument("--save", type=Path, help="write every size's figures to this JSON file")
    parser.add_argument(
        "--report", type=Path, help="print the tables of a --save file; measure nothing"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size
    parser.add_argument("--probe", choices=PROBES, help=argparse.SUPPRESS)  # internal
    options = parser.parse_args()
    options.redis_url = os.environ.get("BENCH_REDIS_URL", "")
    if options.report:
        report(json.loads(options.report.read_text()), options.estimate)
        return
    base = os.environ.get("BENCH_DATABASE_URL", "")
    if not base:
        sys.exit("Set BENCH_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/bench13")
    os.environ.setdefault("SECRET_KEY", "benchmark")
    os.environ["DEBUG"] = "False"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")

    if options.probe:  # the environment is the size's process's
        _probe_run(options.probe)
        return
    if options.one:
        os.environ["DATABASE_URL"] = _url_for(base, options.one)
        # Sweeps in this process run in-process; only the Celery measurement queues tasks.
        os.environ["REDIS_URL"] = options.redis_url
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "True"
        # Static files as production serves them: hashed, precompressed, from collectstatic.
        os.environ["STATIC_MANIFEST"] = "True"
        os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
        figures = measure(options.one, options)
        print("FIGURES " + json.dumps(figures, default=str))
        return

    print(f"# CARTtrack at registry scale\n\n{machine()}\n", flush=True)
    runs = []
    for size in options.patients:
        args = [sys.executable, __file__, "--one", str(size), "--seed", str(options.seed)]
        args += ["--workers", *map(str, options.workers)]
        if options.rebuild:
            args.append("--rebuild")
        if options.equality is not None:
            args.append("--equality" if options.equality else "--no-equality")
        started = time.perf_counter()
        child = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in child.stdout.splitlines() if x.startswith("FIGURES ")), None)
        if child.returncode != 0 or line is None:
            sys.exit(f"{size} patients failed:\n{child.stdout[-3000:]}\n{child.stderr[-5000:]}")
        figures = json.loads(line.removeprefix("FIGURES "))
        figures["run s"] = time.perf_counter() - started
        runs.append(figures)
        if options.save:
            options.save.write_text(json.dumps(runs, indent=1))
        print(table(figures) + "\n", flush=True)
    report(runs, options.estimate, tables=False)


def report(runs: list[dict], target: int, *, tables: bool = True) -> None:
    """The tables of each size (unless printed already), the growth between sizes and the
    estimate for `target` patients."""
    if tables:
        for figures in runs:
            print(table(figures) + "\n")
    if len(runs) > 1:
        print(growth(runs) + "\n")
    if runs and runs[-1]["size"] < target:
        print(estimate(runs, target) + "\n", flush=True)


def _sweep_per_patient() -> dict[str, int]:
    """The per-patient reference: every patient through `services.alerts_sync` (the alert
    writer with one patient), one transaction each, as a clinician's save runs it."""
    from django.db import transaction

    from monitoring import sweep
    from monitoring.services import alerts_sync
    from patients.models import Patient

    counts = {"patients": 0, "changed": 0}
    for patient_id in sweep.all_patient_ids():
        with transaction.atomic():
            patient = Patient.objects.select_for_update().get(pk=patient_id)
            counts["changed"] += len(alerts_sync(patient=patient))
            counts["patients"] += 1
    return counts


if __name__ == "__main__":
    main()
