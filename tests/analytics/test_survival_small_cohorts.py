"""Small cohorts whose answers are worked out by hand in the comments (no database)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.comparisons import landmark_analysis, landmark_cohort_mask, logrank
from analytics.competing import aalen_johansen
from analytics.cox import cox_time_varying, split_at_early_regeneration
from analytics.proportions import proportion_ci
from analytics.survival import (
    kaplan_meier,
    median_brookmeyer_crowley,
    median_collett_symmetric,
    risk_table,
)

Z = 1.959963984540054  # qnorm(0.975)

# Eight CR patients (day, † relapse/death, + censored): 3†, 5†, 5†, 6+, 8†, 10+, 12†, 15+
EIGHT_TIME = [3, 5, 5, 6, 8, 10, 12, 15]
EIGHT_EVENT = [1, 1, 1, 0, 1, 0, 1, 0]
# day  n  d  c   S(t)                      Greenwood sum d/(n(n-d))
#   3  8  1  0   7/8        = 0.875        1/56
#   5  7  2  0   7/8·5/7    = 0.625        1/56 + 2/35        = 63/840
#   6  5  0  1   0.625                     63/840
#   8  4  1  0   0.625·3/4  = 0.46875      63/840 + 1/12      = 133/840
#  10  3  0  1   0.46875                   133/840
#  12  2  1  0   0.46875·1/2 = 0.234375    133/840 + 1/2      = 553/840
#  15  1  0  1   0.234375                  553/840
EIGHT_S = [7 / 8, 0.625, 0.625, 0.46875, 0.46875, 0.234375, 0.234375]
EIGHT_GREENWOOD = [1 / 56, 63 / 840, 63 / 840, 133 / 840, 133 / 840, 553 / 840, 553 / 840]


def test_kaplan_meier_table_of_eight_patients_matches_hand_calculation():
    km = kaplan_meier(EIGHT_TIME, EIGHT_EVENT)
    assert km.time.tolist() == [3, 5, 6, 8, 10, 12, 15]
    assert km.n_at_risk.tolist() == [8, 7, 5, 4, 3, 2, 1]
    assert km.n_events.tolist() == [1, 2, 0, 1, 0, 1, 0]
    assert km.n_censored.tolist() == [0, 0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(km.survival, EIGHT_S, rtol=0, atol=1e-15)
    np.testing.assert_allclose(km.std_err_log, np.sqrt(EIGHT_GREENWOOD), atol=1e-15)
    np.testing.assert_allclose(km.se_survival, np.multiply(EIGHT_S, np.sqrt(EIGHT_GREENWOOD)))
    # log band: S·exp(±z·sqrt(sum)), upper capped at 1
    s8, g8 = 0.46875, math.sqrt(133 / 840)
    assert km.lower[3] == pytest.approx(s8 * math.exp(-Z * g8), abs=1e-12)
    assert km.upper[3] == 1.0  # 0.46875·exp(1.96·0.398) = 1.02 → capped
    assert km.survival_at([0, 2.9, 3, 7.5, 100]).tolist() == [1, 1, 0.875, 0.625, 0.234375]


def test_median_and_brookmeyer_crowley_limits_of_eight_patients():
    # median: S first ≤ 0.5 at day 8 (0.46875).
    # lower limit: first day the lower band ≤ 0.5: day 3 band 0.875·exp(−z·sqrt(1/56)) = 0.674,
    #   day 5 band 0.625·exp(−z·sqrt(63/840)) = 0.365 → 5.
    # upper limit: the upper band is capped at 1 from day 8 on (day 12: 0.234·exp(z·0.811) =
    #   1.15), so it never reaches 0.5 → not reached (None).
    assert 0.875 * math.exp(-Z * math.sqrt(1 / 56)) > 0.5
    assert 0.625 * math.exp(-Z * math.sqrt(63 / 840)) < 0.5
    m = median_brookmeyer_crowley(kaplan_meier(EIGHT_TIME, EIGHT_EVENT))
    assert (m.median, m.lower, m.upper) == (8, 5, None)
    assert "upper limit not reached" in m.note


def test_symmetric_median_ci_uses_collett_density():
    # t50 = 8; SE(S(8)) = 0.46875·sqrt(133/840).
    # u = largest event time with S ≥ 0.55 → day 5 (0.625); l = smallest with S ≤ 0.45 → day 12
    # (0.234375). f = (0.625 − 0.234375)/(12 − 5) = 0.390625/7. SE(t50) = SE(S)/f.
    se_s = 0.46875 * math.sqrt(133 / 840)
    se_t50 = se_s / (0.390625 / 7)
    m = median_collett_symmetric(kaplan_meier(EIGHT_TIME, EIGHT_EVENT))
    assert m.median == 8
    assert m.se == pytest.approx(se_t50, rel=1e-12)
    # The multiplier is exactly 1.96 (CLINICAL.md section 5), not qnorm(0.975).
    assert m.lower == pytest.approx(8 - 1.96 * se_t50, rel=1e-12)
    assert m.upper == pytest.approx(8 + 1.96 * se_t50, rel=1e-12)
    assert m.lower != pytest.approx(8 - Z * se_t50, rel=1e-9)


def test_median_when_the_curve_is_exactly_one_half_follows_r():
    # 1,2,3,4 all events: S = .75, .5, .25, 0. R: S is 0.5 on [2, 3) → median (2+3)/2 = 2.5.
    # Collett's estimate is the first event time with S ≤ 0.5 → 2.
    km = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1])
    assert median_brookmeyer_crowley(km).median == 2.5
    assert median_collett_symmetric(km).median == 2
    # 1,2 events then 3,4 censored: S ends flat at 0.5 → R takes (2 + last time 4)/2 = 3.
    assert median_brookmeyer_crowley(kaplan_meier([1, 2, 3, 4], [1, 1, 0, 0])).median == 3


def test_median_not_reached_is_none_with_a_note():
    km = kaplan_meier([5, 10, 20, 30], [1, 0, 0, 0])
    assert median_brookmeyer_crowley(km).median is None
    sym = median_collett_symmetric(km)
    assert (sym.median, sym.lower, sym.upper) == (None, None, None)
    assert sym.note == "median not reached"


def test_symmetric_ci_is_undefined_when_the_curve_drops_to_zero_at_the_median():
    # day 1 censored, day 5 the last patient relapses: S(5) = 0, Greenwood variance 1/(1·0)
    m = median_collett_symmetric(kaplan_meier([1, 5], [0, 1]))
    assert (m.median, m.lower, m.upper, m.se) == (5, None, None, None)
    assert "drops to 0" in m.note


def test_number_at_risk_at_chosen_days():
    # at risk at t: time ≥ t. Day 5: 7 (all but the day-3 relapse); day 9: 10, 12, 15 → 3.
    table = risk_table(EIGHT_TIME, EIGHT_EVENT, [0, 5, 9, 20])
    assert table.at_risk == [8, 7, 3, 0]
    assert table.events_before == [0, 1, 4, 5]
    assert table.censored_before == [0, 0, 1, 3]


def test_logrank_two_groups_by_hand():
    # A: 2†, 4†, 6+      B: 1+, 3†, 5†, 7†
    # day nA nB d  E_A      V = d·(nA/n)(nB/n)(n−d)/(n−1)
    #  2   3  3 1  3/6      1·(1/2)(1/2)·5/5 = 1/4
    #  3   2  3 1  2/5      (2/5)(3/5)       = 6/25
    #  4   2  2 1  2/4      1/4
    #  5   1  2 1  1/3      2/9
    #  7   0  1 1  0        0 (n = 1)
    # O_A = 2, E_A = 26/15, V = 433/450 → chi2 = (4/15)² / (433/450) = 32/433
    time = [2, 4, 6, 1, 3, 5, 7]
    event = [1, 1, 0, 0, 1, 1, 1]
    group = ["A", "A", "A", "B", "B", "B", "B"]
    result = logrank(time, event, group)
    assert result.chi2 == pytest.approx(32 / 433, rel=1e-12)
    assert result.df == 1
    assert result.groups[0].expected == pytest.approx(26 / 15)
    assert [(g.label, g.n, g.events) for g in result.groups] == [("A", 3, 2), ("B", 4, 3)]
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(32 / 433 / 2)), rel=1e-12)


def test_logrank_with_tied_events_uses_the_hypergeometric_correction():
    # A: 2†, 2†, 5+      B: 2†, 4†, 6+
    # day 2: n 6, d 3, nA 3 → E_A 1.5, V = 3·(1/2)(1/2)·(6−3)/(6−1) = 0.45
    # day 4: n 3, d 1, nA 1 → E_A 1/3, V = (1/3)(2/3) = 2/9
    # O_A − E_A = 2 − 11/6 = 1/6; V = 121/180 → chi2 = (1/36)/(121/180) = 5/121
    result = logrank([2, 2, 5, 2, 4, 6], [1, 1, 0, 1, 1, 0], list("AAABBB"))
    assert result.chi2 == pytest.approx(5 / 121, rel=1e-12)


def test_logrank_reports_small_groups_honestly():
    empty = logrank([5, 9], [1, 0], ["anti"] * 2, levels=["anti", "immuno"])
    assert empty.p_value is None and "no patients in group 'immuno'" in empty.reason
    assert [(g.label, g.n) for g in empty.groups] == [("anti", 2), ("immuno", 0)]
    no_events = logrank([5, 9, 12], [0, 0, 0], ["a", "b", "b"])
    assert no_events.p_value is None and no_events.reason == "no events in any group"
    blank = logrank([5, 9, 12, 13], [1, 0, 1, 1], [1, 0, None, 1])
    assert blank.n_excluded == 1 and blank.p_value is not None
    assert "approximate" in blank.caution


def test_landmark_cohort_excludes_patients_who_relapsed_or_died_before_day_45():
    # (RFS day, event, early_regen)
    time = [30, 45, 45, 46, 100, 200]
    event = [1, 1, 0, 1, 0, 1]
    early = [1, 0, 0, 1, 0, None]
    assert landmark_cohort_mask(time).tolist() == [False, False, False, True, True, True]
    result = landmark_analysis(time, event, early)
    assert result.n_considered == 5  # the blank early_regen is not considered
    assert result.n_event_by_landmark == 2  # relapse on day 30 and on day 45
    assert result.n_censored_by_landmark == 1  # follow-up ended on day 45
    assert result.n_in_cohort == 2
    early_group, other = result.groups
    assert (early_group.n, early_group.events, early_group.median.median) == (1, 1, 1)  # 46 − 45
    assert (other.n, other.events) == (1, 0)


def test_time_varying_split_at_the_regeneration_day():
    rfs = pd.DataFrame(
        {
            "study_id": ["early", "on-relapse-day", "late", "unknown", "day45"],
            "time": [100.0, 40.0, 300.0, 50.0, 300.0],
            "event": [1, 1, 0, 1, 0],
            "early_regen": [1, 1, 0, None, 1],
            "regen_day": [20.0, 40.0, 120.0, None, 45.0],
        }
    )
    split = split_at_early_regeneration(rfs)
    rows = list(split.itertuples(index=False, name=None))
    assert rows == [
        ("early", 0.0, 20.0, 0, 0),
        ("early", 20.0, 100.0, 1, 1),
        ("on-relapse-day", 0.0, 40.0, 1, 0),  # regeneration seen on the relapse day: not before
        ("late", 0.0, 300.0, 0, 0),
        ("day45", 0.0, 45.0, 0, 0),
        ("day45", 45.0, 300.0, 0, 1),
    ]
    assert list(split.columns) == ["study_id", "start", "stop", "event", "early_regen"]


def test_time_varying_cox_with_only_exposed_events_is_reported_as_infinite():
    split = pd.DataFrame(
        {
            "study_id": ["a", "a", "b", "c"],
            "start": [0.0, 10.0, 0.0, 0.0],
            "stop": [10.0, 50.0, 80.0, 90.0],
            "event": [0, 1, 0, 0],
            "early_regen": [0, 1, 0, 0],
        }
    )
    result = cox_time_varying(split)
    assert result.hazard_ratio is None
    assert "monotone likelihood" in result.reason
    assert (result.n_patients, result.n_intervals, result.events) == (3, 4, 1)


def test_aalen_johansen_by_hand_with_tied_competing_events():
    # day status: 1 relapse, 2 death without relapse, 0 censored
    # day 1: n 10, relapse 1 → F1 = 0.1, S = 0.9
    # day 2: n 9, death 1, 1 censored → F2 = 0.9·1/9 = 0.1, S = 0.8
    # day 3: n 7, relapse 1 and death 1 → F1 = 0.1 + 0.8/7, F2 = 0.1 + 0.8/7, S = 0.8·5/7
    time = [1, 2, 2, 3, 3, 4, 5, 5, 6, 7]
    status = [1, 2, 0, 1, 2, 1, 0, 1, 2, 0]
    aj = aalen_johansen(time, status)
    assert aj.cif[0, :3] == pytest.approx([0.1, 0.1, 0.1 + 0.8 / 7])
    assert aj.cif[1, :3] == pytest.approx([0.0, 0.1, 0.1 + 0.8 / 7])
    assert aj.event_free[2] == pytest.approx(0.8 * 5 / 7)
    # day 1 influence: the relapsing patient (1 − 0.1)/10, the nine others −0.1/10 → binomial SE
    assert aj.se[0, 0] == pytest.approx(math.sqrt(0.1 * 0.9 / 10))
    assert aj.at(2.5).estimate == pytest.approx(0.1)
    assert aj.at(0.5).estimate == 0.0


def test_aalen_johansen_without_competing_deaths_is_one_minus_kaplan_meier():
    aj = aalen_johansen(EIGHT_TIME, EIGHT_EVENT)
    np.testing.assert_allclose(aj.cif[0], 1 - np.array(EIGHT_S), atol=1e-15)


def test_cr_rate_clopper_pearson_closed_forms():
    # x = 0: upper = 1 − (α/2)^(1/n); x = n: lower = (α/2)^(1/n)
    none = proportion_ci(0, 10)
    assert (none.proportion, none.lower) == (0.0, 0.0)
    assert none.upper == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-10)
    assert proportion_ci(10, 10).lower == pytest.approx(0.025 ** (1 / 10), rel=1e-10)
    study = proportion_ci(45, 55)
    assert study.proportion == pytest.approx(0.818181818)
    assert study.method == "Clopper-Pearson exact"


def test_cr_rate_wilson_formula():
    # p = 45/55, z²/n terms written out: centre (p + z²/2n)/(1 + z²/n) ± z/(1 + z²/n)·√(...)
    n, p = 55, 45 / 55
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    wilson = proportion_ci(45, 55, method="wilson")
    assert (wilson.lower, wilson.upper) == pytest.approx((centre - half, centre + half))
