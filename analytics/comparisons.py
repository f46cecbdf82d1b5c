"""Group comparisons of RFS: the log-rank test and the day-45 landmark analysis.

The log-rank statistic is computed here (it is short) rather than taken from lifelines, so
that small or degenerate groups are reported honestly instead of raising: every result lists
n, observed and expected events per group, and gives ``p_value = None`` with a ``reason`` when
the test is undefined (an empty group, no events, or zero variance). The numbers agree with
``survival::survdiff`` (rho = 0) and ``lifelines.statistics.logrank_test``; see
tests/analytics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analytics.survival import (
    MedianEstimate,
    as_arrays,
    json_number,
    kaplan_meier,
    median_brookmeyer_crowley,
)

#: Below this many expected events in a group the chi-square approximation is rough.
FEW_EXPECTED_EVENTS = 5


@dataclass(frozen=True)
class GroupSummary:
    label: str
    n: int
    events: int
    expected: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "n": self.n,
            "events": self.events,
            "expected": json_number(self.expected),
        }


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank (Mantel–Haenszel) test of equal hazards across groups."""

    name: str
    groups: tuple[GroupSummary, ...]
    chi2: float | None
    df: int | None
    p_value: float | None
    reason: str | None = None  # why p_value is None
    n_excluded: int = 0  # rows without a group value (e.g. MRD never measured)
    caution: str | None = None  # p exists but rests on few events or dropped groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "test": "log-rank (survdiff rho = 0)",
            "groups": [g.to_dict() for g in self.groups],
            "chi2": json_number(self.chi2),
            "df": self.df,
            "p_value": json_number(self.p_value),
            "reason": self.reason,
            "caution": self.caution,
            "n_excluded": self.n_excluded,
        }


def _labels(group: Sequence[Any]) -> np.ndarray:
    """Group values as text keys (1.0 and 1 -> "1"); blanks (None, NaN, pd.NA) -> None."""
    out = np.empty(len(group), dtype=object)
    for i, value in enumerate(group):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            out[i] = None
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def logrank(
    time: Sequence[float],
    event: Sequence[int],
    group: Sequence[Any],
    *,
    levels: Sequence[Any] | None = None,
    name: str = "",
) -> LogRankResult:
    """Log-rank test across ``levels`` (default: the sorted distinct non-blank group values).

    Rows whose group is blank, or not among ``levels``, are left out and counted in
    ``n_excluded``. Listing ``levels`` explicitly keeps an empty group visible (n = 0) so that
    "no patient received immunomodulatory therapy" is shown rather than silently dropped.
    The statistic is (O − E)ᵀ V⁻¹ (O − E) over the first k − 1 groups with the hypergeometric
    variance, df = k − 1, as survdiff computes it.
    """
    t, e = as_arrays(time, event)
    labels = _labels(group)
    wanted = [str(v) for v in levels] if levels is not None else None
    if wanted is None:
        wanted = sorted({lab for lab in labels if lab is not None})
    keep = np.array([lab is not None and lab in wanted for lab in labels], dtype=bool)
    t, e, labels = t[keep], e[keep], labels[keep]
    members = [labels == lab for lab in wanted]
    n_per = [int(m.sum()) for m in members]
    o_per = np.array([int(e[m].sum()) for m in members], dtype=float)

    def summary(expected: np.ndarray | None) -> tuple[GroupSummary, ...]:
        return tuple(
            GroupSummary(lab, n_per[i], int(o_per[i]), None if expected is None else expected[i])
            for i, lab in enumerate(wanted)
        )

    def undefined(reason: str, expected: np.ndarray | None = None) -> LogRankResult:
        return LogRankResult(name, summary(expected), None, None, None, reason, int((~keep).sum()))

    if len(wanted) < 2:
        return undefined("fewer than two groups to compare")
    empty = [lab for lab, n in zip(wanted, n_per, strict=True) if n == 0]
    if empty:
        return undefined("no patients in group " + ", ".join(repr(x) for x in empty))
    if e.sum() == 0:
        return undefined("no events in any group")

    expected, variance = _expected_and_variance(t, e, members)
    # As survdiff: a group never at risk at an event time (expected 0) carries no information
    # and is left out of the statistic; with fewer than two informative groups there is no test.
    informative = expected > 0
    if informative.sum() < 2:
        return undefined("only one group is at risk at the event times", expected)
    diff = (o_per - expected)[informative][:-1]
    v = variance[np.ix_(informative, informative)][:-1, :-1]
    if np.linalg.matrix_rank(v) < len(diff):
        return undefined("zero variance: the groups are never at risk together", expected)
    df = int(informative.sum()) - 1
    chi2 = float(diff @ np.linalg.solve(v, diff))
    p = float(stats.chi2.sf(chi2, df))
    caution = _logrank_caution(wanted, informative, expected)
    n_excluded = int((~keep).sum())
    return LogRankResult(name, summary(expected), chi2, df, p, None, n_excluded, caution)


def _expected_and_variance(
    t: np.ndarray, e: np.ndarray, members: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each group's expected events and the hypergeometric covariance of (O − E), summed over
    the distinct event times (survdiff's)."""
    k = len(members)
    expected = np.zeros(k)
    variance = np.zeros((k, k))
    for u in np.unique(t[e == 1]):
        at_risk = np.array([(t[m] >= u).sum() for m in members], dtype=float)
        deaths = np.array([e[m & (t == u)].sum() for m in members], dtype=float)
        n, d = at_risk.sum(), deaths.sum()
        expected += d * at_risk / n
        if n > 1:
            share = at_risk / n
            variance += d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
    return expected, variance


def _logrank_caution(
    wanted: list[str], informative: np.ndarray, expected: np.ndarray
) -> str | None:
    """What a reader of the p-value must know: groups left out, groups with few expected events."""
    notes = []
    dropped = [lab for lab, ok in zip(wanted, informative, strict=True) if not ok]
    if dropped:
        notes.append("not at risk at any event time, left out: " + ", ".join(map(repr, dropped)))
    small = [lab for lab, x in zip(wanted, expected, strict=True) if 0 < x < FEW_EXPECTED_EVENTS]
    if small:
        notes.append(
            f"fewer than {FEW_EXPECTED_EVENTS} expected events in group "
            + ", ".join(repr(x) for x in small)
            + ": the chi-square p-value is approximate"
        )
    return "; ".join(notes) or None


@dataclass(frozen=True)
class GroupCurve:
    label: str
    n: int
    events: int
    median: MedianEstimate

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "n": self.n, "events": self.events, **self.median.to_dict()}


@dataclass(frozen=True)
class LandmarkResult:
    """RFS from the landmark day among patients still at risk then, by early regeneration."""

    landmark_day: float
    n_considered: int  # CR patients with a known early_regen value
    n_event_by_landmark: int  # relapsed or died on or before the landmark day: excluded
    n_censored_by_landmark: int  # follow-up ended on or before the landmark day: excluded
    n_in_cohort: int
    groups: tuple[GroupCurve, ...]
    test: LogRankResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "landmark_day": json_number(self.landmark_day),
            "time_scale": "days after the landmark",
            "n_considered": self.n_considered,
            "n_event_by_landmark": self.n_event_by_landmark,
            "n_censored_by_landmark": self.n_censored_by_landmark,
            "n_in_cohort": self.n_in_cohort,
            "groups": [g.to_dict() for g in self.groups],
            "logrank": self.test.to_dict(),
        }


def landmark_cohort_mask(time: Sequence[float], *, landmark_day: float = 45) -> np.ndarray:
    """Who is in the landmark cohort: RFS time strictly after the landmark day.

    This excludes everyone who relapsed or died on or before the landmark (their outcome
    happened before the grouping was known) and everyone whose follow-up ended by then (no
    time at risk after it). A regeneration *on* the landmark day counts as "by then", the
    same inclusive window as the early-regeneration rule.
    """
    return np.asarray(time, dtype=float) > landmark_day


def landmark_analysis(
    time: Sequence[float],
    event: Sequence[int],
    early_regen: Sequence[Any],
    *,
    landmark_day: float = 45,
    conf_level: float = 0.95,
) -> LandmarkResult:
    """Landmark analysis (Anderson et al. 1983) that removes the immortal-time bias of a naive
    regenerated-yes/no split: group at the landmark, measure time from it, KM + log-rank.

    ``time`` must be on the infusion time scale, the one on which regeneration is defined.
    Patients with a blank ``early_regen`` (aplasia never documented) are not considered.
    """
    t, e = as_arrays(time, event)
    labels = _labels(early_regen)
    known = np.array([lab is not None for lab in labels], dtype=bool)
    at_risk = known & landmark_cohort_mask(t, landmark_day=landmark_day)
    before = known & ~at_risk
    t_lm, e_lm, g_lm = t[at_risk] - landmark_day, e[at_risk], labels[at_risk]
    groups = []
    for label, name in (("1", "early regeneration"), ("0", "no early regeneration")):
        member = g_lm == label
        if member.any():
            km = kaplan_meier(t_lm[member], e_lm[member], conf_level=conf_level)
            median = median_brookmeyer_crowley(km)
        else:
            median = MedianEstimate("Brookmeyer-Crowley", None, None, None, note="empty group")
        groups.append(GroupCurve(name, int(member.sum()), int(e_lm[member].sum()), median))
    names = {"1": "early regeneration", "0": "no early regeneration"}
    test = logrank(
        t_lm,
        e_lm,
        [names[g] for g in g_lm],
        levels=list(names.values()),
        name=f"early regeneration, landmark day {landmark_day:g}",
    )
    return LandmarkResult(
        landmark_day=float(landmark_day),
        n_considered=int(known.sum()),
        n_event_by_landmark=int((before & (e == 1)).sum()),
        n_censored_by_landmark=int((before & (e == 0)).sum()),
        n_in_cohort=int(at_risk.sum()),
        groups=tuple(groups),
        test=test,
    )
