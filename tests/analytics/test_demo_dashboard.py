"""The demo cohort's dashboard tells the study's story (CLINICAL.md section 6), and the export of
it gives the same figures through ``survival_report`` and through R's ``survival``.

The ranges asserted are properties of the deterministic synthetic cohort (seed 12): a generator
change that breaks the study's shape fails here.

The cohort is loaded once for the module, inside a transaction that is rolled back at the end,
so the other tests never see it.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from analytics import services
from analytics.dataset import CohortFilter

# The mark makes pytest-django create the test database; the cohort itself is module-scoped.
pytestmark = pytest.mark.django_db

REPRODUCE_R = Path(settings.BASE_DIR) / "scripts" / "reproduce_headline.R"


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    """What the demo gives: the load command's output, its snapshot and the exported CSV."""
    with django_db_blocker.unblock(), transaction.atomic():
        out = io.StringIO()
        call_command(
            "load_demo_cohort", "--quiet-logins", "--today", "2026-07-01", "--no-live", stdout=out
        )
        snapshot = services.latest_snapshot(CohortFilter())
        client = Client()
        client.force_login(get_user_model().objects.get(username="registry"))
        response = client.get("/dashboard/export.csv")
        assert response.status_code == 200
        path = tmp_path_factory.mktemp("demo") / "demo-analysis.csv"
        path.write_bytes(response.content)
        result = {
            "output": out.getvalue(),
            "report": snapshot.report,
            "n_patients": snapshot.n_patients,
            "csv": path,
        }
        transaction.set_rollback(True)
    return result


def test_load_command_computes_the_dashboard(demo):
    assert "Loaded 55 synthetic patients" in demo["output"]
    assert "Computed the survival dashboard" in demo["output"]
    assert demo["n_patients"] == 55


def test_demo_is_marked_synthetic_everywhere(demo):
    assert demo["report"]["cohort"]["n_synthetic"] == 55
    rows = list(csv.DictReader(demo["csv"].open()))
    assert len(rows) == 55
    assert {r["synthetic"] for r in rows} == {"1"}
    assert all(r["study_id"].startswith("DEMO-") for r in rows)
    text = demo["csv"].read_text()
    assert "SYN0" not in text and "Synthetic DEMO" not in text  # the MRN and name stay inside


def test_cr_rate_is_45_of_55(demo):
    cr = demo["report"]["cr_rate"]
    assert (cr["successes"], cr["n"]) == (45, 55)
    assert round(cr["proportion"], 3) == 0.818


def test_medians_sit_in_the_studys_range(demo):
    rfs = demo["report"]["rfs"]["median_brookmeyer_crowley"]["median"]
    os_ = demo["report"]["os"]["median_brookmeyer_crowley"]["median"]
    assert 200 <= rfs <= 420
    assert 600 <= os_ <= 1100


def test_early_regenerators_relapse_more(demo):
    early = demo["report"]["logrank"]["early_regeneration"]
    assert early["p_value"] < 0.05
    observed = {g["label"]: (g["events"], g["expected"]) for g in early["groups"]}
    events, expected = observed["early regeneration"]
    assert events > expected


def test_survival_report_on_the_export_prints_the_snapshots_medians(demo):
    out = io.StringIO()
    call_command("survival_report", "--csv", str(demo["csv"]), stdout=out)
    text = out.getvalue()
    sections = re.split(r"\n(?=Relapse-free survival|Overall survival|Log-rank tests)", text)
    by_title = {s.split(" ", 1)[0]: s for s in sections}
    for key, title in (("rfs", "Relapse-free"), ("os", "Overall")):
        m = demo["report"][key]["median_brookmeyer_crowley"]
        line = next(x for x in by_title[title].splitlines() if x.strip().startswith("median "))
        assert f"{m['median']:.1f} days, 95 % CI {m['lower']:.1f}-" in line, line


def _run_r(csv_path: Path) -> dict[str, float | None]:
    if shutil.which("Rscript") is None:
        pytest.fail("Rscript is missing: apt-get install r-base-core r-cran-survival")
    done = subprocess.run(
        ["Rscript", str(REPRODUCE_R), str(csv_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "there is no package called" in done.stderr:
        pytest.fail("R's survival package is missing: apt-get install r-base-core r-cran-survival")
    assert done.returncode == 0, done.stderr
    values: dict[str, float | None] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(",")
        values[key] = None if value == "NA" else float(value)
    return values


def test_r_survival_on_the_export_agrees_with_the_snapshot(demo):
    r = _run_r(demo["csv"])
    report = demo["report"]
    assert (
        r["rfs.median_brookmeyer_crowley.median"]
        == report["rfs"]["median_brookmeyer_crowley"]["median"]
    )
    assert (
        r["os.median_brookmeyer_crowley.median"]
        == report["os"]["median_brookmeyer_crowley"]["median"]
    )
    assert r["logrank.early_regeneration.chi2"] == pytest.approx(
        report["logrank"]["early_regeneration"]["chi2"], rel=1e-9
    )
    assert r["cr_rate.proportion"] == pytest.approx(45 / 55)
