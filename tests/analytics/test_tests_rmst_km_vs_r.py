"""Weighted / stratified / trend log-rank, RMST and the KM options against R, to 1e-6.

One Rscript run (tests/analytics/r_tests.R) on the synthetic cohort's endpoints, R's lung and
veteran (added by the R script) and random small samples with heavy ties and strata. R missing
is a failure, not a skip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.dataset_schema import read_analysis_csv
from analytics.endpoints import os_endpoint, rfs_endpoint
from analytics.km_options import km_band, km_quantile, survival_at_times
from analytics.logrank_tests import logrank_trend, weighted_logrank
from analytics.rmst import rmst_compare
from analytics.survival import kaplan_meier
from tests.analytics.synthetic_cohort import write_synthetic_csv
from tests.analytics.test_survival_vs_r import HERE, _require_rscript, _run

TOLERANCE = 1e-6
FH = ((1, 0), (0, 1), (1, 1), (0.5, 2))


def _samples(cohort: pd.DataFrame) -> pd.DataFrame:
    frames = []

    def add(name, time, event, group, stratum):
        frames.append(
            pd.DataFrame(
                {
                    "sample": name,
                    "time": np.asarray(time, float),
                    "event": np.asarray(event, int),
                    "group": [str(g) for g in group],
                    "stratum": [str(s) for s in stratum],
                }
            )
        )

    rfs = rfs_endpoint(cohort).merge(cohort[["study_id", "center"]], on="study_id")
    rfs = rfs[rfs["early_regen"].notna()]
    add("rfs", rfs["time"], rfs["event"], rfs["early_regen"].astype(int), rfs["center"])
    os_ = os_endpoint(cohort, cr_only=False).merge(cohort[["study_id", "center"]], on="study_id")
    add("os_preemptive", os_["time"], os_["event"], os_["preemptive_category"], os_["center"])
    rng = np.random.default_rng(19)
    for i in range(12):
        n = int(rng.integers(25, 70))
        k = 2 if i % 2 else 3
        add(
            f"random_{i:02d}",
            rng.integers(1, int(rng.choice([8, 30, 400])), size=n),
            (rng.random(n) < rng.uniform(0.3, 0.9)).astype(int),
            np.resize(list("abc")[:k], n),
            rng.choice(["s1", "s2"], size=n),
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def r_ref(tmp_path_factory):
    rscript = _require_rscript()
    tmp = tmp_path_factory.mktemp("r_tests")
    cohort = read_analysis_csv(write_synthetic_csv(tmp / "cohort.csv"))
    _samples(cohort).to_csv(tmp / "samples.csv", index=False)
    _run(rscript, HERE / "r_tests.R", tmp / "samples.csv", tmp)
    ref = pd.read_csv(tmp / "reference.csv", na_values=["NA"])
    reference = {k: g.sort_values("index")["value"].to_numpy(float) for k, g in ref.groupby("key")}
    samples = pd.read_csv(tmp / "samples_all.csv", dtype={"group": str, "stratum": str})
    return reference, samples


class Gaps:
    def __init__(self) -> None:
        self.worst: dict[str, float] = {}

    def check(self, what: str, got, expected) -> None:
        got = np.asarray([np.nan if v is None else v for v in np.atleast_1d(got)], float)
        expected = np.atleast_1d(expected)
        assert got.shape == expected.shape, (what, got, expected)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), (what, got, expected)
        both = ~np.isnan(got)
        gap = float(
            np.max(
                np.abs(got[both] - expected[both]) / np.maximum(1, np.abs(expected[both])),
                initial=0.0,
            )
        )
        kind = what.split(".", 1)[1]
        self.worst[kind] = max(self.worst.get(kind, 0.0), gap)
        assert gap < TOLERANCE, (what, got, expected)


def test_weighted_stratified_and_trend_logrank_equal_survdiff(r_ref):
    reference, samples = r_ref
    gaps = Gaps()
    for name, d in samples.groupby("sample"):
        args = (d["time"], d["event"], d["group"])
        for rho in (0, 1):
            gaps.check(
                f"{name}.survdiff",
                weighted_logrank(*args, rho=rho).chi2,
                reference[f"{name}.survdiff.{rho}"],
            )
            gaps.check(
                f"{name}.survdiff_strata",
                weighted_logrank(*args, rho=rho, strata=d["stratum"]).chi2,
                reference[f"{name}.survdiff_strata.{rho}"],
            )
        for rho, gamma in FH:
            tag = f"{rho:g}_{gamma:g}"
            gaps.check(
                f"{name}.fh",
                weighted_logrank(*args, rho=rho, gamma=gamma).chi2,
                reference[f"{name}.fh.{tag}"],
            )
            gaps.check(
                f"{name}.fh_strata",
                weighted_logrank(*args, rho=rho, gamma=gamma, strata=d["stratum"]).chi2,
                reference[f"{name}.fh_strata.{tag}"],
            )
        levels = sorted(d["group"].unique())
        if len(levels) >= 3:
            for strata in (False, True):
                out = logrank_trend(*args, levels=levels, strata=d["stratum"] if strata else None)
                gaps.check(
                    f"{name}.trend", out["chi2"], reference[f"{name}.trend.{str(strata).upper()}"]
                )
    # the R formula for gamma = 0 is survdiff's rho test: the reference itself is checked
    for name in samples["sample"].unique():
        np.testing.assert_allclose(reference[f"{name}.fh.1_0"], reference[f"{name}.survdiff.1"])
    print("log-rank worst relative gaps:", gaps.worst)


def test_rmst_per_group_difference_and_ratio_equal_r(r_ref):
    reference, samples = r_ref
    gaps = Gaps()
    for name, d in samples.groupby("sample"):
        tau = float(reference[f"{name}.tau"][0])
        out = rmst_compare(d["time"], d["event"], d["group"], tau=tau)
        gaps.check(f"{name}.rmean", [g["rmst"] for g in out["groups"]], reference[f"{name}.rmean"])
        gaps.check(
            f"{name}.rmean_se", [g["se"] for g in out["groups"]], reference[f"{name}.rmean_se"]
        )
        if len(out["groups"]) > 2:
            out = rmst_compare(
                d["time"], d["event"], d["group"], tau=tau, levels=sorted(d["group"].unique())[:2]
            )
        diff, ratio = out["difference"], out["ratio"]
        gaps.check(
            f"{name}.rmst_diff",
            [diff["estimate"], diff["lower"], diff["upper"], diff["p_value"]],
            reference[f"{name}.rmst_diff"],
        )
        gaps.check(
            f"{name}.rmst_ratio",
            [ratio["estimate"], ratio["lower"], ratio["upper"], ratio["p_value"]],
            reference[f"{name}.rmst_ratio"],
        )
    print("RMST worst relative gaps:", gaps.worst)


def test_km_bands_survival_at_times_and_quantiles_equal_r(r_ref):
    reference, samples = r_ref
    gaps = Gaps()
    for name, d in samples.groupby("sample"):
        km = kaplan_meier(d["time"], d["event"])
        for ct in ("log", "log-log", "plain"):
            lower, upper = km_band(km, ct)
            gaps.check(f"{name}.band_lower", lower, reference[f"{name}.band_lower.{ct}"])
            gaps.check(f"{name}.band_upper", upper, reference[f"{name}.band_upper.{ct}"])
            rows = survival_at_times(km, reference[f"{name}.at.times.{ct}"], conf_type=ct)
            for ours, theirs in (
                ("survival", "surv"),
                ("std_err", "se"),
                ("lower", "lower"),
                ("upper", "upper"),
                ("n_at_risk", "n_risk"),
                ("n_events", "n_event"),
            ):
                gaps.check(
                    f"{name}.at_{ours}",
                    [r[ours] for r in rows],
                    reference[f"{name}.at.{theirs}.{ct}"],
                )
            qs = [km_quantile(km, p, conf_type=ct) for p in (0.1, 0.25, 0.5, 0.75)]
            for key, ref_key in (("quantile", "q"), ("lower", "q_lower"), ("upper", "q_upper")):
                gaps.check(
                    f"{name}.{ref_key}", [q[key] for q in qs], reference[f"{name}.{ref_key}.{ct}"]
                )
    print("KM worst relative gaps:", gaps.worst)


def test_the_new_statistics_refuse_what_they_do_not_support():
    km = kaplan_meier([1, 2, 3, 4], [1, 0, 1, 0])
    with pytest.raises(ValueError, match="conf_type must be one of"):
        km_band(km, "arcsin")
    with pytest.raises(ValueError, match="after the last follow-up"):
        survival_at_times(km, [2, 10])
    with pytest.raises(ValueError, match="between 0 and 1"):
        km_quantile(km, 1.5)
    with pytest.raises(ValueError, match="past the last follow-up of group 'b'.*τ ≤ 3"):
        rmst_compare([1, 2, 5, 3], [1, 0, 1, 1], ["a", "b", "a", "b"], tau=4)
    with pytest.raises(ValueError, match="rho must be a number >= 0"):
        weighted_logrank([1, 2], [1, 1], ["a", "b"], rho=-1)
    with pytest.raises(ValueError, match="at least three ordered groups"):
        logrank_trend([1, 2], [1, 1], ["a", "b"], levels=["a", "b"])
    with pytest.raises(ValueError, match="event indicators must be 0"):
        weighted_logrank([1, 2], [1, 3], ["a", "b"])
