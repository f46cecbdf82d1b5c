"""Rule performance and window calibration on the demo cohort, against R's survival to 1e-6.

The demo cohort is loaded once (rolled back at the end); its analysis dataset, alerts table and
B-cell course are exported as CSV files, and both the Python statistics and R read those files:
``scripts/calibration.R`` recomputes the calibration grid (landmark log-rank per window, Cox HR
and CI) on its own, and R's ``prop.test(correct = FALSE)`` gives the Wilson intervals of every
sensitivity, specificity, PPV and NPV.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from analytics.calibration import WINDOWS, calibration_grid
from analytics.course_tables import (
    alerts_frame,
    bcell_course_frame,
    read_alerts_csv,
    read_bcell_csv,
    table_csv,
)
from analytics.dataset import analysis_csv, analysis_frame
from analytics.dataset_schema import read_analysis_csv
from analytics.performance import rule_performance_report
from demo.cohort import REFERENCE_TODAY
from demo.load import demo_cohort_load
from tests.analytics.test_survival_vs_r import TOLERANCE, _require_rscript

pytestmark = pytest.mark.django_db
CALIBRATION_R = Path(settings.BASE_DIR) / "scripts" / "calibration.R"


@pytest.fixture(scope="module")
def demo_tables(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock(), transaction.atomic():
        demo_cohort_load(today=REFERENCE_TODAY, live=False)
        folder = tmp_path_factory.mktemp("calibration")
        paths = {
            "analysis": folder / "analysis.csv",
            "alerts": folder / "alerts.csv",
            "bcells": folder / "analysis-bcells.csv",  # the name survival_report looks for
        }
        paths["analysis"].write_text(analysis_csv(analysis_frame()))
        paths["alerts"].write_text(table_csv(alerts_frame()))
        paths["bcells"].write_text(table_csv(bcell_course_frame()))
        transaction.set_rollback(True)
    return paths


def _r_values(output: str) -> dict[str, float]:
    values = {}
    for line in output.splitlines():
        key, value = line.rsplit(",", 1)
        values[key] = math.nan if value == "NA" else float(value)
    return values


def test_calibration_grid_matches_r(demo_tables):
    rscript = _require_rscript()
    done = subprocess.run(
        [rscript, CALIBRATION_R, demo_tables["analysis"], demo_tables["bcells"]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    r = _r_values(done.stdout)
    grid = calibration_grid(
        read_analysis_csv(demo_tables["analysis"]), read_bcell_csv(demo_tables["bcells"])
    )
    assert len(grid["cells"]) == 60
    compared, worst = 0, 0.0
    for cell in grid["cells"]:
        key = (
            f"calibration.{cell['window_days']}.{cell['threshold_cells_per_ul']:g}."
            f"{int(cell['confirmation'])}"
        )
        assert cell["n_regenerated"] == r[f"{key}.n_regenerated"], key
        assert cell["n_not_regenerated"] == r[f"{key}.n_not_regenerated"], key
        assert cell["events_regenerated"] == r[f"{key}.events_regenerated"], key
        if f"{key}.chi2" not in r:
            assert cell["chi2"] is None, key
            continue
        assert cell["chi2"] == pytest.approx(r[f"{key}.chi2"], abs=TOLERANCE), key
        compared += 1
        if cell["hazard_ratio"] is None:  # monotone likelihood: R reports a huge or tiny HR
            continue
        for figure in ("hazard_ratio", "lower", "upper"):
            assert cell[figure] == pytest.approx(r[f"{key}.{figure}"], abs=TOLERANCE), (key, figure)
            worst = max(worst, abs(cell[figure] - r[f"{key}.{figure}"]))
    print(f"calibration: {compared} cells compared with R, largest HR/CI difference {worst:.1e}")
    assert compared >= 30  # most of the grid is estimable on the demo cohort


def test_the_study_cell_equals_the_headline_landmark(demo_tables):
    from analytics.report import headline_report

    frame = read_analysis_csv(demo_tables["analysis"])
    grid = calibration_grid(frame, read_bcell_csv(demo_tables["bcells"]), windows=(45,))
    cell = next(
        c for c in grid["cells"] if c["threshold_cells_per_ul"] == 0 and not c["confirmation"]
    )
    landmark = headline_report(frame)["landmark"]
    assert cell["chi2"] == pytest.approx(landmark["logrank"]["chi2"], abs=1e-12)
    groups = {g["label"]: g["n"] for g in landmark["groups"]}
    assert cell["n_regenerated"] == groups["early regeneration"]
    assert cell["n_not_regenerated"] == groups["no early regeneration"]
    assert set(WINDOWS) == {21, 28, 35, 45, 60, 90}


def test_wilson_intervals_match_r_prop_test(demo_tables):
    rscript = _require_rscript()
    report = rule_performance_report(
        read_analysis_csv(demo_tables["analysis"]), read_alerts_csv(demo_tables["alerts"])
    )
    proportions = [
        entry[name]
        for center in report["early_regeneration_by_center"].values()
        for entry in center["horizons"]
        for name in ("sensitivity", "specificity", "ppv", "npv")
        if entry[name] is not None and entry[name]["n"] > 0
    ]
    assert len(proportions) >= 8
    calls = "\n".join(
        f"x <- prop.test({p['successes']}, {p['n']}, correct = FALSE)$conf.int; "
        'cat(sprintf("%.15g,%.15g\\n", x[1], x[2]))'
        for p in proportions
    )
    done = subprocess.run(
        [rscript, "-e", calls], capture_output=True, text=True, timeout=120, check=True
    )
    limits = [tuple(map(float, line.split(","))) for line in done.stdout.split()]
    for p, (lower, upper) in zip(proportions, limits, strict=True):
        assert p["lower"] == pytest.approx(lower, abs=TOLERANCE)
        assert p["upper"] == pytest.approx(upper, abs=TOLERANCE)
    json.dumps(report, allow_nan=False)


def test_survival_report_prints_the_same_grid_and_the_rule_performance(demo_tables, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command(
        "survival_report", "--csv", str(demo_tables["analysis"]), "--calibration", "--json"
    )
    printed = json.loads(capsys.readouterr().out)
    expected = calibration_grid(
        read_analysis_csv(demo_tables["analysis"]), read_bcell_csv(demo_tables["bcells"])
    )
    assert printed == json.loads(json.dumps(expected))
    call_command("survival_report", "--csv", str(demo_tables["analysis"]), "--calibration")
    text = capsys.readouterr().out
    assert "overstates" in text and "HR (95 % CI)" in text
    call_command(
        "survival_report",
        "--csv",
        str(demo_tables["analysis"]),
        "--alerts",
        str(demo_tables["alerts"]),
        "--json",
    )
    report = json.loads(capsys.readouterr().out)
    performance = report["rule_performance"]
    assert performance["early_regeneration_by_center"]
    assert any(r["rule"] == "early_regeneration" for r in performance["alerts"])
    call_command(
        "survival_report",
        "--csv",
        str(demo_tables["analysis"]),
        "--alerts",
        str(demo_tables["alerts"]),
    )
    assert "Early regeneration, center" in capsys.readouterr().out
    with pytest.raises(CommandError, match="B-cell course table not found"):
        call_command(
            "survival_report",
            "--csv",
            str(demo_tables["analysis"]),
            "--calibration",
            "--bcells",
            "/nonexistent.csv",
        )
