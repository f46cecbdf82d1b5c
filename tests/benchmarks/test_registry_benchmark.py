"""The registry benchmark (benchmarks/registry.py) cannot rot: a seconds-long run on 50 patients
prints every figure's row with its anchor and ratio and each step's peak memory (the import path
next to COPY among them) and the estimate for 100,000 patients, the bulk sweep equals the
per-patient path and the first sweep after the bulk load queues no e-mail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_run_prints_the_table():
    parts = urlsplit(os.environ["DATABASE_URL"])
    bench_url = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_bench"))
    env = {**os.environ, "BENCH_DATABASE_URL": bench_url, "BENCH_REDIS_URL": ""}
    run = subprocess.run(
        [sys.executable, "benchmarks/registry.py", "--patients", "50", "--rebuild", "--workers"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "| measure | CARTtrack | anchor | ratio |" in out
    for row in (
        "hourly sweep, nothing changed",
        "full (nightly) sweep, nothing changed",
        "first sweep over the bulk-loaded registry",
        "dashboard snapshot",
        "dashboard, first view",
        "dashboard, repeat view",
    ):
        assert row in out
    assert "peak RSS MB" in out  # every measured step's peak memory
    for row in ("| bulk load (bulk_create", "| CSV export", "| import path: 5 new patients"):
        assert row in out
    assert "(target ≤ 5×)" in out and "Peak RSS of this process" in out
    assert "### Estimate for 100,000 patients" in out
    assert "| notifications queued by the first sweep (history) | 0 |" in out
    assert "| bulk result equals the per-patient path | True |" in out
    assert "CPUs" in out and "UTC" in out  # the date and the machine
