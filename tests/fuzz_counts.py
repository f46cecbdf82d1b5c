"""How many cases each fuzzing test tried, kept in test-artifacts/fuzz-counts.json for the
closing note (and printed with -s)."""

from __future__ import annotations

import json
from pathlib import Path

ARTIFACT = Path(__file__).resolve().parents[1] / "test-artifacts" / "fuzz-counts.json"


def record(name: str, cases: int, **details: int) -> None:
    ARTIFACT.parent.mkdir(exist_ok=True)
    counts = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    counts[name] = {"cases": cases, **details}
    ARTIFACT.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    print(f"\n{name}: {cases} cases {details or ''}")
