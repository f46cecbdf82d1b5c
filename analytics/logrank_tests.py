"""Weighted, stratified and trend log-rank tests, as R's ``survdiff`` computes them.

``weighted_logrank`` is the G(ρ, γ) family of Fleming and Harrington: at each event time the
observed-minus-expected counts are weighted by w(t) = S(t−)^ρ · (1 − S(t−))^γ, S the pooled
Kaplan–Meier estimate (within the stratum when stratified), and the hypergeometric variance by
w(t)². ρ = γ = 0 is the log-rank test, ρ = 1, γ = 0 the Peto–Peto (Prentice) modification of
the Gehan–Wilcoxon test that ``survdiff(rho = 1)`` gives; γ > 0 weights late differences, which
``survdiff`` does not offer (R reference in tests/analytics/r_tests.R is written from the
formula). With ``strata`` (e.g. center) the per-stratum sums are added before forming the
statistic, as ``survdiff(Surv(t, e) ~ group + strata(center))``.

``logrank_trend`` tests a trend over ordered groups with scores c (default 1, 2, …, k):
(cᵀ(O − E))² / cᵀVc on 1 df, from the same O − E and V.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from analytics.comparisons import _labels
from analytics.survival import as_arrays, json_list, json_number


@dataclass(frozen=True, eq=False)
class WeightedLogRank:
    test: str
    levels: tuple[str, ...]
    n: tuple[int, ...]
    observed: np.ndarray  # weighted, as survdiff's $obs with rho > 0
    expected: np.ndarray
    variance: np.ndarray
    chi2: float | None
    df: int | None
    p_value: float | None
    reason: str | None = None
    n_excluded: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "groups": [
                {"label": lab, "n": n, "observed": json_number(o), "expected": json_number(e)}
                for lab, n, o, e in zip(
                    self.levels, self.n, self.observed, self.expected, strict=True
                )
            ],
            "chi2": json_number(self.chi2),
            "df": self.df,
            "p_value": json_number(self.p_value),
            "reason": self.reason,
            "n_excluded": self.n_excluded,
        }


def _prepare(time, event, group, strata, levels):
    t, e = as_arrays(time, event)
    labels = _labels(group)
    if len(labels) != len(t):
        raise ValueError("group must give one value per patient")
    strata_labels = np.array(["all"] * len(t), dtype=object) if strata is None else _labels(strata)
    if len(strata_labels) != len(t):
        raise ValueError("strata must give one value per patient")
    wanted = [str(v) for v in levels] if levels is not None else None
    if wanted is None:
        wanted = sorted({lab for lab in labels if lab is not None})
    keep = np.array(
        [
            lab is not None and lab in wanted and s is not None
            for lab, s in zip(labels, strata_labels, strict=True)
        ],
        dtype=bool,
    )
    return t[keep], e[keep], labels[keep], strata_labels[keep], wanted, int((~keep).sum())


def _sums(t, e, labels, strata_labels, wanted, rho: float, gamma: float):
    k = len(wanted)
    observed, expected = np.zeros(k), np.zeros(k)
    variance = np.zeros((k, k))
    members = np.array([labels == lab for lab in wanted])
    for s in sorted(set(strata_labels)):
        in_s = strata_labels == s
        km = 1.0  # pooled KM within the stratum, S(t−) at each event time
        for u in np.unique(t[in_s & (e == 1)]):
            at_risk = np.array([(in_s & m & (t >= u)).sum() for m in members], float)
            deaths = np.array([(in_s & m & (t == u) & (e == 1)).sum() for m in members], float)
            n, d = at_risk.sum(), deaths.sum()
            w = km**rho * (1 - km) ** gamma
            observed += w * deaths
            expected += w * d * at_risk / n
            if n > 1:
                share = at_risk / n
                variance += (
                    w * w * d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
                )
            km *= 1 - d / n
    return observed, expected, variance


def _name(rho: float, gamma: float, stratified: bool) -> str:
    if rho == 0 and gamma == 0:
        name = "log-rank (survdiff rho = 0)"
    elif gamma == 0:
        name = f"Fleming–Harrington G({rho:g}, 0) (survdiff rho = {rho:g})"
    else:
        name = f"Fleming–Harrington G({rho:g}, {gamma:g})"
    return name + (", stratified" if stratified else "")


def weighted_logrank(
    time: Sequence[float],
    event: Sequence[int],
    group: Sequence[Any],
    *,
    strata: Sequence[Any] | None = None,
    rho: float = 0.0,
    gamma: float = 0.0,
    levels: Sequence[Any] | None = None,
) -> WeightedLogRank:
    """G(ρ, γ) test of equal hazards across groups, optionally stratified."""
    for name, value in (("rho", rho), ("gamma", gamma)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a number >= 0 (0 is the log-rank test)")
    t, e, labels, strata_labels, wanted, excluded = _prepare(time, event, group, strata, levels)
    test = _name(rho, gamma, strata is not None)
    n_per = tuple(int((labels == lab).sum()) for lab in wanted)
    observed, expected, variance = _sums(t, e, labels, strata_labels, wanted, rho, gamma)
    result = dict(
        test=test,
        levels=tuple(wanted),
        n=n_per,
        observed=observed,
        expected=expected,
        variance=variance,
        n_excluded=excluded,
    )
    if len(wanted) < 2:
        return WeightedLogRank(
            **result, chi2=None, df=None, p_value=None, reason="fewer than two groups to compare"
        )
    if e.sum() == 0:
        return WeightedLogRank(
            **result, chi2=None, df=None, p_value=None, reason="no events in any group"
        )
    informative = expected > 0
    diff = (observed - expected)[informative][:-1]
    v = variance[np.ix_(informative, informative)][:-1, :-1]
    if informative.sum() < 2 or np.linalg.matrix_rank(v) < len(diff):
        return WeightedLogRank(
            **result,
            chi2=None,
            df=None,
            p_value=None,
            reason="zero variance: the groups are never at risk together",
        )
    chi2 = float(diff @ np.linalg.solve(v, diff))
    df = int(informative.sum()) - 1
    return WeightedLogRank(**result, chi2=chi2, df=df, p_value=float(stats.chi2.sf(chi2, df)))


def logrank_trend(
    time: Sequence[float],
    event: Sequence[int],
    group: Sequence[Any],
    *,
    levels: Sequence[Any],
    scores: Sequence[float] | None = None,
    strata: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Test for trend across ordered ``levels`` (scores 1..k unless given), 1 df."""
    if len(levels) < 3:
        raise ValueError("a trend test needs at least three ordered groups")
    c = np.arange(1, len(levels) + 1, dtype=float) if scores is None else np.asarray(scores, float)
    if c.shape != (len(levels),) or not np.all(np.isfinite(c)):
        raise ValueError("give one finite score per level")
    if np.ptp(c) == 0:
        raise ValueError("the scores must not all be equal")
    t, e, labels, strata_labels, wanted, excluded = _prepare(time, event, group, strata, levels)
    observed, expected, variance = _sums(t, e, labels, strata_labels, wanted, 0.0, 0.0)
    u = float(c @ (observed - expected))
    v = float(c @ variance @ c)
    out = {
        "test": "log-rank test for trend" + (", stratified" if strata is not None else ""),
        "levels": list(wanted),
        "scores": json_list(c),
        "observed": json_list(observed),
        "expected": json_list(expected),
        "n_excluded": excluded,
    }
    if not v > 0:
        return out | {
            "chi2": None,
            "df": None,
            "p_value": None,
            "reason": "zero variance: the groups are never at risk together",
        }
    chi2 = u * u / v
    return out | {"chi2": chi2, "df": 1, "p_value": float(stats.chi2.sf(chi2, 1)), "reason": None}
