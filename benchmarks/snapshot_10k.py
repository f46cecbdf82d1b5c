"""How long a dashboard snapshot takes for a large synthetic cohort, next to R's survival and
lifelines alone running the same analyses on the exported CSV.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carttrack_bench SECRET_KEY=x \\
        .venv/bin/python benchmarks/snapshot_10k.py [--patients 10000] [--seed 12]

It drops and recreates the database DATABASE_URL names, migrates it, and stores N synthetic
patients made by the demo cohort's generator (``demo.cohort._patient``; CR groups in the
study's proportions, 45 of every 55 patients in CR). It refuses a database that holds any
non-synthetic patient, or tables that are not CARTtrack's.

For speed the rows go in with ``bulk_create`` only: no ``full_clean()`` per row (a sample of
patients is validated afterwards), no audit-history rows (so ``data_version()`` says "empty") and
no alerts. The generator is the one ``load_demo_cohort`` stores through the validated model layer.

Steps timed (wall seconds) with the process's peak RSS during the step (Linux: the high-water
mark is reset before each step through /proc/self/clear_refs; elsewhere the lifetime peak):

  a. analysis_frame()           the analysis table from the database
  b. CSV round trip             analysis_csv + read_analysis_csv, as snapshot_compute does
  c. headline_report()          every headline figure
  d. dashboard_figures()        the plotly figures
  e. snapshot_compute()         a + b + c + d + the insert, end to end
  f. export CSV                 what /dashboard/export.csv does (analysis_frame + analysis_csv)
  g. Rscript reproduce_headline.R on that CSV      (subprocess; its own peak RSS)
  h. lifelines_only.py on that CSV                 (subprocess; its own peak RSS)
  i. manage.py survival_report --csv on that CSV   (subprocess: CARTtrack's statistics alone)

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_setup import cohort_store, database_recreate, sample_validate  # noqa: E402

# --- measuring ------------------------------------------------------------------------------


def _peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# Runs argv[3:] with stdout to argv[2]; writes "wall-seconds max-rss-kB" of that program to argv[1].
_LAUNCHER = """
import os, subprocess, sys, time
report, stdout, args = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(stdout, "w") as out:
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=out)
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
with open(report, "w") as f:
    f.write(f"{seconds} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Bench:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float | None, str]] = []
        self.per_step_peak = _peak_reset()

    def step(self, name: str, fn: Callable[[], Any], note: str = "") -> Any:
        self.per_step_peak = _peak_reset() and self.per_step_peak
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        self.rows.append((name, seconds, _peak_mb(), note))
        print(f"  {name:<46} {seconds:9.2f} s", flush=True)
        return result

    def child(self, name: str, args: list[str], note: str = "") -> str:
        """Run a program; its wall time and its own peak RSS.

        A small launcher process starts the program and reports the rusage of it alone: a
        program forked straight from this (large) process would report this process's size as
        its own peak, since Linux carries the pre-exec high-water mark over into ru_maxrss.
        """
        with tempfile.TemporaryDirectory() as tmp:
            report, stdout = Path(tmp) / "usage", Path(tmp) / "stdout"
            launcher = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, str(report), str(stdout), *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if launcher.returncode != 0:
                sys.exit(f"{' '.join(args)} failed ({launcher.returncode}):\n{launcher.stderr}")
            seconds, max_rss_kb = report.read_text().split()
            text = stdout.read_text()
        self.rows.append((name, float(seconds), int(max_rss_kb) / 1024, note))
        print(f"  {name:<46} {float(seconds):9.2f} s", flush=True)
        return text

    def table(self) -> str:
        peak = "peak RSS MB" + ("" if self.per_step_peak else " (process lifetime)")
        lines = [f"| step | seconds | {peak} | note |", "|---|---:|---:|---|"]
        for name, seconds, mb, note in self.rows:
            lines.append(
                f"| {name} | {seconds:.2f} | {'' if mb is None else f'{mb:.0f}'} | {note} |"
            )
        return "\n".join(lines)


# --- machine ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def run(args: list[str]) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "not available"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "nproc": run(["nproc"]),
        "cpu": cpu,
        "memory (free -h)": run(["free", "-h"]).splitlines()[1] if run(["free", "-h"]) else "",
        "python": platform.python_version(),
        "postgresql": postgres,
        "R": run(["Rscript", "--version"]) or run(["R", "--version"]).splitlines()[0],
        "R survival": run(["Rscript", "-e", 'cat(format(packageVersion("survival")))']),
    }


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--validate", type=int, default=10, help="patients to full_clean()")
    parser.add_argument("--csv", type=Path, help="where to write the export (default: temp)")
    options = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("Set DATABASE_URL to a database of its own, e.g. .../carttrack_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")
    os.environ.setdefault("DEBUG", "False")  # no query log growing with every row

    bench = Bench()
    print(f"CARTtrack snapshot benchmark, {options.patients} synthetic patients", flush=True)
    bench.step("setup: drop + create database", lambda: database_recreate(url))

    import django

    django.setup()
    from django.core.management import call_command

    bench.step("setup: migrate", lambda: call_command("migrate", verbosity=0))
    counts = bench.step(
        "setup: generate + bulk_create cohort",
        lambda: cohort_store(options.patients, options.seed),
        "no history, no full_clean, no alerts",
    )
    bench.step(
        f"setup: full_clean {options.validate} patients",
        lambda: sample_validate(options.validate),
    )
    print("  rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)

    from analytics.dataset import analysis_csv, analysis_frame
    from analytics.dataset_schema import read_analysis_csv
    from analytics.figures import dashboard_figures
    from analytics.report import headline_report
    from analytics.services import snapshot_compute

    frame = bench.step("a. analysis_frame() from the database", analysis_frame)
    table = bench.step(
        "b. CSV round trip (write + validate)",
        lambda: read_analysis_csv(io.StringIO(analysis_csv(frame))),
    )
    report = bench.step("c. headline_report()", lambda: headline_report(table))
    bench.step("d. dashboard_figures()", lambda: dashboard_figures(table, report))
    snapshot = bench.step("e. snapshot_compute() total", lambda: snapshot_compute(options={}))

    csv_path = options.csv or Path(tempfile.mkdtemp(prefix="carttrack-bench-")) / "analysis.csv"

    def export() -> None:
        csv_path.write_text(analysis_csv(analysis_frame()))

    bench.step("f. export CSV (as /dashboard/export.csv)", export)
    r_text = bench.child(
        "g. Rscript reproduce_headline.R (R survival)",
        ["Rscript", str(ROOT / "scripts" / "reproduce_headline.R"), str(csv_path)],
        "subprocess incl. R start-up",
    )
    lifelines_text = bench.child(
        "h. lifelines_only.py (lifelines alone)",
        [sys.executable, str(ROOT / "benchmarks" / "lifelines_only.py"), str(csv_path)],
        "subprocess incl. Python start-up",
    )
    bench.child(
        "i. survival_report --csv (CARTtrack alone)",
        [sys.executable, str(ROOT / "manage.py"), "survival_report", "--csv", str(csv_path)],
        "subprocess incl. Django start-up",
    )

    def parse(text: str) -> dict[str, float | None]:
        values = {}
        for line in text.splitlines():
            key, _, value = line.partition(",")
            if value:
                values[key] = None if value == "NA" else float(value)
        return values

    r, lifelines = parse(r_text), parse(lifelines_text)
    ours = snapshot.report
    agreement = [
        ("CR rate", ours["cr_rate"]["proportion"], "cr_rate.proportion"),
        (
            "RFS median (days)",
            ours["rfs"]["median_brookmeyer_crowley"]["median"],
            "rfs.median_brookmeyer_crowley.median",
        ),
        (
            "OS median (days)",
            ours["os"]["median_brookmeyer_crowley"]["median"],
            "os.median_brookmeyer_crowley.median",
        ),
        (
            "log-rank chi2, early regeneration",
            ours["logrank"]["early_regeneration"]["chi2"],
            "logrank.early_regeneration.chi2",
        ),
        (
            "log-rank chi2, landmark day 45",
            ours["landmark"]["logrank"]["chi2"],
            "logrank.landmark.chi2",
        ),
        (
            "Cox HR, time-varying",
            ours["cox"]["time_varying"]["hazard_ratio"],
            "cox.time_varying.hazard_ratio",
        ),
        (
            "CIR of relapse, day 365",
            ours["cumulative_incidence"]["relapse"][1]["estimate"],
            "cumulative_incidence.relapse.1.estimate",
        ),
    ]

    def fmt(value: float | None) -> str:
        return "NA" if value is None else f"{value:.6g}"

    print("\nTimings\n")
    print(bench.table())
    print("\nSame figures from the three implementations\n")
    print("| figure | snapshot | R survival | lifelines |")
    print("|---|---:|---:|---:|")
    for label, value, key in agreement:
        print(f"| {label} | {fmt(value)} | {fmt(r.get(key))} | {fmt(lifelines.get(key))} |")
    print(
        "\nlifelines per analysis (seconds): "
        + ", ".join(
            f"{k.removeprefix('seconds.')} {v:.2f}"
            for k, v in lifelines.items()
            if k.startswith("seconds.")
        )
    )
    print(
        f"\nCohort: {snapshot.n_patients} patients; "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    print(f"Export: {csv_path} ({csv_path.stat().st_size / 1e6:.1f} MB)")
    print("\nMachine\n")
    for key, value in machine().items():
        print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
