"""Reference timelines: hand-checked clinical courses with the findings each must give.

Each file in ``reference_timelines/`` holds a ``timeline`` (docs/timeline-format.md), a
``description`` of the case, and ``checks``: an ``as_of`` date (or null), optional ``params``,
and the ``expected`` findings (rule, infusion, day, severity, evidence ids with roles, and any
``details`` that must match). A change to the rules that changes one of these is a clinical change.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from monitoring.engine import evaluate
from monitoring.params import RuleParams
from monitoring.timeline_json import parse_json, timeline_from_json

CASES = sorted((Path(__file__).parent / "reference_timelines").glob("*.json"))


def test_there_are_reference_timelines():
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_reference_timeline_gives_its_expected_findings(path: Path):
    case = parse_json(path.read_text(encoding="utf-8"))
    assert case["description"]
    timeline = timeline_from_json(case["timeline"])
    for check in case["checks"]:
        as_of = date.fromisoformat(check["as_of"]) if check["as_of"] else None
        params = RuleParams.from_dict(check["params"]) if "params" in check else RuleParams()
        findings = evaluate(timeline, params, as_of=as_of)
        observed = [
            {
                "rule": f.rule,
                "infusion_id": f.infusion_id,
                "day": f.day,
                "severity": f.severity,
                "evidence": [[e.result_id, e.role] for e in f.evidence],
            }
            for f in findings
        ]
        expected = [{k: v for k, v in e.items() if k != "details"} for e in check["expected"]]
        assert observed == expected, f"{path.name} as of {check['as_of']}"
        for finding, wanted in zip(findings, check["expected"], strict=True):
            for key, value in wanted.get("details", {}).items():
                assert finding.details[key] == value, f"{path.name}: {finding.rule} {key}"
        json.dumps([f.details for f in findings])  # details are stored as they are: JSON-safe
