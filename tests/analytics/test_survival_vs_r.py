"""Every figure against R's survival package on the same rows, to 1e-6 (no database).

Two R programs run on CSVs written to tmp_path:
* tests/analytics/r_reference.R: KM tables (estimate, Greenwood std.err, log band), medians
  with Brookmeyer–Crowley limits, survdiff and the multi-state Aalen–Johansen estimate with its
  IJ standard error, for the synthetic cohort's endpoints and for many random small samples
  with heavy ties (where quantile.survfit's midpoint rules matter);
* scripts/reproduce_headline.R: the headline figures, compared key by key with
  headline_report() (the keys are the report's JSON paths).
R missing is a failure, not a skip: these checks are the product's claim of correctness.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.comparisons import landmark_cohort_mask, logrank
from analytics.competing import aalen_johansen
from analytics.dataset_schema import read_analysis_csv
from analytics.endpoints import os_endpoint, rfs_endpoint
from analytics.report import headline_report
from analytics.survival import kaplan_meier, median_brookmeyer_crowley
from tests.analytics.synthetic_cohort import write_synthetic_csv

TOLERANCE = 1e-6
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
INSTALL_HINT = "apt-get install r-base-core r-cran-survival"
NON_MONOTONE_UPPER_BAND = [
    (
        [13, 1, 2, 3, 12, 1, 8, 6, 13, 15, 1, 3, 2, 3, 6, 14, 14, 11, 16, 2, 7],
        [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0],
    ),
    (
        [8, 7, 7, 7, 2, 9, 2, 3, 4, 6, 3, 6, 6, 5, 1, 7, 7, 1, 3, 1, 6],
        [1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ),
    (
        [1, 1, 2, 2, 2, 3, 3, 4, 2, 3, 1, 2, 3, 4, 3, 1, 3, 2],
        [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1],
    ),
]


def _missing_r() -> str | None:
    """Why R cannot run the cross-checks, or None when it can."""
    path = shutil.which("Rscript")
    if path is None:
        return f"Rscript not found; the R cross-checks need it: {INSTALL_HINT}"
    probe = subprocess.run([path, "-e", "library(survival)"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"R's survival package is missing: {INSTALL_HINT}\n{probe.stderr}"
    return None


def _require_rscript() -> str:
    """Rscript's path; a missing R fails the calling test (inside its body, so it is reported
    as FAILED with the install hint, never skipped)."""
    problem = _missing_r()
    if problem:
        pytest.fail(problem)
    return shutil.which("Rscript") or "Rscript"


def _run(rscript: str, *args: str | Path) -> str:
    done = subprocess.run(
        [rscript, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, f"R failed:\n{done.stderr}"
    return done.stdout


def _samples(cohort: pd.DataFrame) -> pd.DataFrame:
    """The cohort's endpoints plus random small samples, as (sample, time, event, group, cause)."""
    frames = []

    def add(name: str, time, event, group, cause) -> None:
        frames.append(
            pd.DataFrame(
                {
                    "sample": name,
                    "time": np.asarray(time, float),
                    "event": np.asarray(event, int),
                    "group": [str(g) for g in group],
                    "cause": np.asarray(cause, int),
                }
            )
        )

    rfs = rfs_endpoint(cohort)
    add("rfs", rfs["time"], rfs["event"], rfs["early_regen"].fillna(9), rfs["cir_event"])
    alt = rfs_endpoint(cohort, origin="cr", censor_at_hsct=True)
    add("rfs_cr_hsct", alt["time"], alt["event"], alt["mrd_positive"].fillna(9), alt["cir_event"])
    os_ = os_endpoint(cohort, cr_only=False)
    add("os_all", os_["time"], os_["event"], os_["car_loss"].fillna(9), os_["event"])
    lm = rfs[landmark_cohort_mask(rfs["time"]) & rfs["early_regen"].notna()]
    for flag in (0, 1):
        g = lm[lm["early_regen"] == flag]
        group = g["preemptive_category"]
        add(f"landmark_{flag}", g["time"] - 45, g["event"], group, g["cir_event"])

    rng = np.random.default_rng(20240611)
    for i in range(60):
        n = int(rng.integers(4, 45))
        time = rng.integers(1, int(rng.choice([6, 12, 40, 500])), size=n)
        event = (rng.random(n) < rng.uniform(0.2, 1.0)).astype(int)
        group = rng.choice(["a", "b", "c"][: int(rng.integers(2, 4))], size=n)
        cause = np.where(event == 1, rng.choice([1, 2], size=n, p=[0.7, 0.3]), 0)
        add(f"random_{i:02d}", time, event, group, cause)
    for i in range(15):  # even n, few distinct days: S often sits exactly at 0.5 (midpoint rule)
        n = 2 * int(rng.integers(2, 10))
        time = np.sort(rng.integers(1, 7, size=n))
        event = np.ones(n, int)
        if i % 3 == 0:  # the curve ends flat at 0.5: the last half censored after the median
            time[n // 2 :] = time[n // 2 - 1] + np.arange(1, n - n // 2 + 1)
            event[n // 2 :] = 0
        add(f"half_{i:02d}", time, event, np.resize(["a", "b"], n), event)
    # the upper band dips below 0.5 and climbs back: R's approx() takes the smallest level
    # >= 0.5, not the first crossing (found by search; a naive port gives 14, 7 and 3)
    for i, (time, event) in enumerate(NON_MONOTONE_UPPER_BAND):
        add(f"non_monotone_{i}", time, event, np.resize(["a", "b"], len(time)), event)
    # group b is never at risk at an event time: R gives chi2 0 on df 0, we decline the test
    add("b_never_at_risk", [1, 1, 2, 3, 4], [0, 0, 1, 1, 0], list("bbaaa"), [0, 0, 1, 2, 0])
    # ... and with a third group R drops b and tests a against c on 1 df
    add("b_dropped", [1, 1, 2, 3, 4, 2, 5], [0, 0, 1, 1, 0, 1, 1], list("bbaaacc"), [0] * 7)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def r_output(tmp_path_factory):
    """R's tables for the samples, or None when R is missing (each test then fails)."""
    if _missing_r():
        return None
    rscript = _require_rscript()
    tmp = tmp_path_factory.mktemp("r")
    cohort = read_analysis_csv(write_synthetic_csv(tmp / "cohort.csv"))
    samples = _samples(cohort)
    samples.to_csv(tmp / "samples.csv", index=False)
    _run(rscript, HERE / "r_reference.R", tmp / "samples.csv", tmp)
    names = ("km", "quantiles", "logrank", "aj")
    tables = {name: pd.read_csv(tmp / f"{name}.csv") for name in names}
    return samples, tables


def _tables(r_output):
    _require_rscript()  # in the test body: a missing R is a FAILED test with the install hint
    return r_output


def _max_diff(ours, theirs) -> float:
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"defined at different rows:\n{a}\n{b}"
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def test_kaplan_meier_tables_match_r(r_output):
    samples, tables = _tables(r_output)
    worst: dict[str, float] = {}
    for name, rows in samples.groupby("sample", sort=False):
        km = kaplan_meier(rows["time"], rows["event"])
        r = tables["km"][tables["km"]["sample"] == name]
        assert km.time.tolist() == r["time"].tolist()
        for ours, col in [
            (km.n_at_risk, "n_risk"),
            (km.n_events, "n_event"),
            (km.n_censored, "n_censor"),
            (km.survival, "surv"),
            (np.where(np.isinf(km.std_err_log), np.nan, km.std_err_log), "std_err"),
            (km.lower, "lower"),
            (km.upper, "upper"),
            # R's std.err is on the log scale: SE(S) = S · std.err
            (km.se_survival, None),
        ]:
            theirs = r["surv"] * r["std_err"] if col is None else r[col]
            worst[col or "se_survival"] = max(worst.get(col or "se", 0.0), _max_diff(ours, theirs))
    assert max(worst.values()) < TOLERANCE, worst


def test_medians_and_brookmeyer_crowley_limits_match_r(r_output):
    samples, tables = _tables(r_output)
    q = tables["quantiles"].set_index("sample")
    compared = 0
    for name, rows in samples.groupby("sample", sort=False):
        m = median_brookmeyer_crowley(kaplan_meier(rows["time"], rows["event"]))
        ours = [np.nan if v is None else v for v in (m.median, m.lower, m.upper)]
        assert _max_diff(ours, q.loc[name, ["median", "lower", "upper"]]) < TOLERANCE, name
        compared += 1
    assert compared == samples["sample"].nunique()


def test_logrank_matches_survdiff(r_output):
    samples, tables = _tables(r_output)
    r = tables["logrank"].set_index("sample")
    compared = 0
    for name, rows in samples.groupby("sample", sort=False):
        ours = logrank(rows["time"], rows["event"], rows["group"])
        if ours.p_value is None:
            # we decline where R reports chi2 = 0 on df 0 (fewer than two informative groups)
            assert name not in r.index or r.loc[name, "df"] < 1, (name, ours.reason)
            continue
        assert ours.chi2 == pytest.approx(r.loc[name, "chisq"], abs=TOLERANCE), name
        assert ours.df == r.loc[name, "df"], name
        compared += 1
    assert compared >= 60
    assert "b_never_at_risk" in r.index and r.loc["b_never_at_risk", "df"] == 0
    assert r.loc["b_dropped", "df"] == 1


def test_aalen_johansen_matches_r_multistate_survfit(r_output):
    samples, tables = _tables(r_output)
    worst = 0.0
    for name, rows in samples.groupby("sample", sort=False):
        r = tables["aj"][tables["aj"]["sample"] == name]
        if r.empty:
            continue
        aj = aalen_johansen(rows["time"], rows["cause"])
        assert aj.time.tolist() == r["time"].tolist()
        assert aj.n_at_risk.tolist() == r["n_risk"].tolist()
        for k in (0, 1):
            c = str(k + 1)
            for ours, col in [
                (aj.cif[k], "p"),
                (aj.se[k], "se"),
                (aj.lower[k], "lower"),
                (aj.upper[k], "upper"),
            ]:
                worst = max(worst, _max_diff(ours, r[col + c]))
    assert worst < TOLERANCE


def _flat_report(report: dict[str, Any], key: str) -> Any:
    """The value in headline_report() that reproduce_headline.R prints under ``key``."""
    if key.startswith("logrank.landmark."):
        key = "landmark.logrank." + key.removeprefix("logrank.landmark.")
    key = key.replace("landmark.groups.early.", "landmark.groups.0.")
    key = key.replace("landmark.groups.not_early.", "landmark.groups.1.")
    value: Any = report
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.parametrize(
    ("options", "r_args"),
    [({}, []), ({"rfs_origin": "cr", "censor_at_hsct": True}, ["--origin=cr", "--censor-at-hsct"])],
    ids=["from-infusion", "from-cr-censored-at-hsct"],
)
def test_headline_figures_match_reproduce_headline_script(tmp_path, options, r_args):
    rscript = _require_rscript()
    csv = write_synthetic_csv(tmp_path / "cohort.csv")
    report = headline_report(read_analysis_csv(csv), **options)
    output = _run(rscript, ROOT / "scripts" / "reproduce_headline.R", csv, *r_args)
    lines = [line.split(",") for line in output.strip().splitlines()]
    assert len(lines) > 60
    differences = {}
    for key, text in lines:
        ours = _flat_report(report, key)
        theirs = None if text == "NA" else float(text)
        if theirs is None or ours is None:
            assert ours is None and theirs is None, key
            continue
        differences[key] = abs(ours - theirs)
    worst = max(differences, key=differences.get)
    assert differences[worst] < TOLERANCE, (worst, differences[worst])
