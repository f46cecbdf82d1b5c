"""Gray's test and the Fine–Gray model (analytics.competing_models) against R's cmprsk
(cuminc $Tests, crr) to 1e-6: R's mgus2 (exported by tests/analytics/r_competing.R), the
synthetic cohort's landmark data (relapse vs death without relapse, by regeneration at day 45)
and random samples with three causes, three groups and two strata. One Rscript run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.competing_models import fine_gray, gray_test, landmark_rows
from analytics.dataset_schema import read_analysis_csv
from tests.analytics.synthetic_cohort import write_synthetic_csv
from tests.analytics.test_survival_vs_r import HERE, _require_rscript, _run

TOLERANCE = 1e-6


def _samples(cohort: pd.DataFrame) -> pd.DataFrame:
    frames = []
    lm = landmark_rows(cohort, landmark_day=45)
    rng = np.random.default_rng(6)
    frames.append(
        pd.DataFrame(
            {
                "sample": "landmark45",
                "time": lm["time"],
                "status": lm["status"],
                "group": lm["regenerated"].astype(str),
                "stratum": lm["center"],
                "x1": rng.normal(size=len(lm)),
                "x2": rng.integers(0, 2, size=len(lm)),
            }
        )
    )
    for i in range(6):
        n = int(rng.integers(40, 90))
        frames.append(
            pd.DataFrame(
                {
                    "sample": f"random_{i}",
                    "time": rng.integers(1, int(rng.choice([10, 50, 300])), size=n).astype(float),
                    "status": rng.choice([0, 1, 2, 3], size=n, p=[0.3, 0.35, 0.2, 0.15]),
                    "group": rng.choice(["a", "b", "c"], size=n),
                    "stratum": rng.choice(["s1", "s2"], size=n),
                    "x1": np.round(rng.normal(50, 10, size=n), 1),
                    "x2": rng.integers(0, 2, size=n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def r_ref(tmp_path_factory):
    rscript = _require_rscript()
    tmp = tmp_path_factory.mktemp("r_competing")
    cohort = read_analysis_csv(write_synthetic_csv(tmp / "cohort.csv"))
    _samples(cohort).to_csv(tmp / "samples.csv", index=False)
    _run(rscript, HERE / "r_competing.R", tmp / "samples.csv", tmp)
    ref = pd.read_csv(tmp / "reference.csv", na_values=["NA"])
    reference = {k: g.sort_values("index")["value"].to_numpy(float) for k, g in ref.groupby("key")}
    samples = pd.read_csv(tmp / "samples_all.csv", dtype={"group": str, "stratum": str})
    return reference, samples


def _gap(got, expected) -> float:
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    assert got.shape == expected.shape
    return float(np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))))


def test_gray_test_equals_cuminc_tests(r_ref):
    reference, samples = r_ref
    worst = 0.0
    for name, d in samples.groupby("sample"):
        rows = gray_test(d["time"], d["status"], d["group"])
        for key, got in (
            (".gray", [r["statistic"] for r in rows]),
            (".gray_p", [r["p_value"] for r in rows]),
        ):
            gap = _gap(got, reference[name + key])
            assert gap < TOLERANCE, (name, key, got, reference[name + key])
            worst = max(worst, gap)
        rows = gray_test(d["time"], d["status"], d["group"], strata=d["stratum"])
        gap = _gap([r["statistic"] for r in rows], reference[name + ".gray_strata"])
        assert gap < TOLERANCE, name
        worst = max(worst, gap)
    print("Gray's test worst relative gap:", worst)


def test_fine_gray_equals_crr_for_every_cause(r_ref):
    reference, samples = r_ref
    worst: dict[str, float] = {}
    fitted = 0
    for name, d in samples.groupby("sample"):
        first = sorted(d["group"].unique())[0]
        x = np.column_stack([d["x1"], d["x2"], (d["group"] == first).astype(float)])
        for cause in sorted(d.loc[d["status"] > 0, "status"].unique()):
            key = f"{name}.crr.{cause}"
            if key + ".coef" not in reference:
                continue
            assert reference[key + ".converged"][0] == 1
            out = fine_gray(d["time"], d["status"], x, names=["x1", "x2", "g"], cause=cause)
            for stat, got in (
                ("coef", [r["coef"] for r in out["coefficients"]]),
                ("se", [r["se"] for r in out["coefficients"]]),
                ("loglik", [out["loglik"]]),
            ):
                gap = _gap(got, reference[f"{key}.{stat}"])
                assert gap < TOLERANCE, (key, stat, got, reference[f"{key}.{stat}"])
                worst[stat] = max(worst.get(stat, 0.0), gap)
            fitted += 1
    assert fitted >= 19
    print("Fine–Gray worst relative gaps:", worst)


def test_competing_risk_functions_refuse_bad_input():
    with pytest.raises(ValueError, match="status must be 0 .censored. or a cause number"):
        gray_test([1, 2, 3], [0, 1, -1], ["a", "b", "a"])
    with pytest.raises(ValueError, match="at least two groups"):
        gray_test([1, 2, 3], [0, 1, 2], ["a", "a", "a"])
    with pytest.raises(ValueError, match="no events of cause 3"):
        fine_gray([1, 2, 3, 4], [0, 1, 2, 1], [[0], [1], [0], [1]], names=["x"], cause=3)
    with pytest.raises(ValueError, match="one value only: x"):
        fine_gray([1, 2, 3, 4], [0, 1, 2, 1], [[1], [1], [1], [1]], names=["x"])
    with pytest.raises(ValueError, match="did not converge"):
        fine_gray(
            [1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 2, 0], [[1], [1], [1], [0], [0], [0]], names=["x"]
        )
