"""Our estimators against lifelines called directly on the same arrays (no database).

Where lifelines makes a different documented choice, the test says so: its KM band is
log(−log) (ours is R's log band, checked against R instead), its median is the first time with
S ≤ 0.5 (Collett's definition; R takes a midpoint where S is exactly 0.5), and its
Aalen–Johansen jitters tied times (so it is compared on tie-free data only).
"""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test

from analytics.comparisons import logrank
from analytics.competing import aalen_johansen
from analytics.dataset_schema import validate_analysis_frame
from analytics.endpoints import os_endpoint, rfs_endpoint
from analytics.survival import kaplan_meier, median_collett_symmetric, risk_table
from tests.analytics.synthetic_cohort import synthetic_frame

TOLERANCE = 1e-10  # same arithmetic, so agreement is to rounding


@pytest.fixture(scope="module")
def cohort():
    return validate_analysis_frame(synthetic_frame())


def _random_samples(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(5, 60))
        time = rng.integers(1, int(rng.choice([8, 30, 400])), size=n).astype(float)
        event = (rng.random(n) < rng.uniform(0.3, 0.95)).astype(int)
        yield time, event


def _endpoints(cohort):
    yield "rfs", rfs_endpoint(cohort)
    yield "rfs from CR, HSCT censored", rfs_endpoint(cohort, origin="cr", censor_at_hsct=True)
    yield "os", os_endpoint(cohort)


def test_kaplan_meier_and_greenwood_match_lifelines(cohort):
    samples = [(r["time"].to_numpy(), r["event"].to_numpy()) for _, r in _endpoints(cohort)]
    worst = 0.0
    for time, event in [*samples, *_random_samples(7, 40)]:
        ours = kaplan_meier(time, event)
        kmf = KaplanMeierFitter().fit(time, event)
        theirs = kmf.survival_function_.loc[ours.time, "KM_estimate"].to_numpy()
        worst = max(worst, np.abs(ours.survival - theirs).max())
        table = kmf.event_table.loc[ours.time]
        assert ours.n_at_risk.tolist() == table["at_risk"].tolist()
        assert ours.n_events.tolist() == table["observed"].tolist()
        assert ours.n_censored.tolist() == table["censored"].tolist()
        # lifelines keeps Greenwood's running sum d/(n(n − d)); ours is its square root
        greenwood = kmf._cumulative_sq_.loc[ours.time].to_numpy()
        finite = ours.survival > 0
        np.testing.assert_allclose(ours.std_err_log[finite] ** 2, greenwood[finite], rtol=1e-12)
    assert worst < TOLERANCE


def test_median_matches_lifelines_first_time_at_or_below_one_half():
    for time, event in _random_samples(11, 60):
        ours = median_collett_symmetric(kaplan_meier(time, event)).median
        theirs = KaplanMeierFitter().fit(time, event).median_survival_time_
        if np.isinf(theirs):
            assert ours is None
        else:
            assert ours == theirs


def test_number_at_risk_matches_lifelines_event_table(cohort):
    rfs = rfs_endpoint(cohort)
    days = [0, 90, 180, 365, 730]
    kmf = KaplanMeierFitter().fit(rfs["time"], rfs["event"])
    table = risk_table(rfs["time"], rfs["event"], days)
    at_risk = kmf.event_table["at_risk"]
    expected = [
        int(at_risk[at_risk.index >= d].iloc[0]) if (at_risk.index >= d).any() else 0 for d in days
    ]
    assert table.at_risk == expected


@pytest.mark.parametrize(
    "column", ["early_regen", "mrd_positive", "car_loss", "preemptive_category"]
)
def test_logrank_comparisons_match_lifelines(cohort, column):
    rfs = rfs_endpoint(cohort)
    if column == "preemptive_category":
        rfs = rfs[rfs["early_regen"] == 1]
        rfs = rfs[rfs[column].isin(["anti_leukemic", "immunomodulatory"])]
    rfs = rfs.dropna(subset=[column])
    ours = logrank(rfs["time"], rfs["event"], rfs[column].astype(str))
    a, b = (rfs[rfs[column].astype(str) == g.label] for g in ours.groups)
    theirs = logrank_test(a["time"], b["time"], a["event"], b["event"])
    assert ours.chi2 == pytest.approx(theirs.test_statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.p_value, abs=1e-9)


def test_three_group_logrank_matches_lifelines_multivariate():
    rng = np.random.default_rng(3)
    for time, event in _random_samples(5, 20):
        group = rng.choice(["a", "b", "c"], size=len(time))
        ours = logrank(time, event, group)
        if ours.p_value is None or ours.df != 2:
            continue
        theirs = multivariate_logrank_test(time, group, event)
        assert ours.chi2 == pytest.approx(theirs.test_statistic, abs=1e-9)
        assert ours.p_value == pytest.approx(theirs.p_value, abs=1e-9)


def test_aalen_johansen_point_estimates_match_lifelines_on_tie_free_data():
    rng = np.random.default_rng(17)
    n = 120
    time = np.round(rng.exponential(300, size=n), 6)
    assert len(np.unique(time)) == n  # no ties, so lifelines does not jitter
    status = rng.choice([0, 1, 2], size=n, p=[0.3, 0.5, 0.2])
    ours = aalen_johansen(time, status)
    for cause in (1, 2):
        ajf = AalenJohansenFitter(calculate_variance=False)
        ajf.fit(time, status, event_of_interest=cause)
        theirs = ajf.cumulative_density_.iloc[:, 0]
        at = theirs.reindex(ours.time, method="ffill").to_numpy()
        np.testing.assert_allclose(ours.cif[cause - 1], at, atol=TOLERANCE)
