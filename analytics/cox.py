"""Cox models for early B-cell regeneration: time-varying (the unbiased one) and time-fixed.

A patient is only known to have regenerated early once it happens, so treating
``early_regen`` as known from day 0 credits the regenerators with relapse-free time before
their regeneration (immortal-time bias). The time-varying model splits each CR patient's RFS
follow-up at the regeneration day: covariate 0 before it, 1 after.

Fitted by ``analytics.coxph.cox_fit`` (exact Newton–Raphson; lifelines stopped ~2e-7 short of
R's optimum), Efron ties, so the R reference is
``coxph(Surv(start, stop, event) ~ early_regen, ties = "efron")`` (R's default). The CI and
p-value are Wald: exp(β ± z·SE) and 2·(1 − Φ(|β / SE|)), as R's ``summary.coxph`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analytics.survival import json_number

TIES = "efron"


def split_at_early_regeneration(rfs: pd.DataFrame) -> pd.DataFrame:
    """Counting-process rows ``study_id, start, stop, event, early_regen`` for a CR cohort.

    ``rfs`` needs ``study_id, time, event, early_regen, regen_day`` with ``time`` on the
    infusion scale (``endpoints.rfs_endpoint(df, origin="infusion")``). A patient with
    ``early_regen == 1`` and 0 < regen_day < time gets two rows, (0, regen_day] with covariate
    0 and no event, and (regen_day, time] with covariate 1 carrying the RFS event. A
    regeneration on or after the RFS time did not precede the event (the covariate must be
    known before the outcome), so such a patient keeps one row with covariate 0; a regeneration
    on day 0 would make the whole follow-up exposed. Patients with a blank ``early_regen``
    (aplasia never documented) are left out, as in the log-rank comparison. Zero-length
    follow-up (time 0) cannot be represented as (start, stop] and is dropped.
    """
    rows: list[tuple[str, float, float, int, int]] = []
    for r in rfs.itertuples(index=False):
        if pd.isna(r.early_regen) or not r.time > 0:
            continue
        regen = float(r.regen_day) if not pd.isna(r.regen_day) else np.nan
        event = int(r.event)
        if int(r.early_regen) == 1 and 0 < regen < r.time:
            rows.append((r.study_id, 0.0, regen, 0, 0))
            rows.append((r.study_id, regen, float(r.time), event, 1))
        else:
            exposed = int(int(r.early_regen) == 1 and regen <= 0)
            rows.append((r.study_id, 0.0, float(r.time), event, exposed))
    return pd.DataFrame(rows, columns=["study_id", "start", "stop", "event", "early_regen"])


@dataclass(frozen=True)
class CoxResult:
    """Hazard ratio of one binary covariate; numbers are None with a reason when undefined."""

    model: str
    covariate: str
    n_patients: int
    n_intervals: int
    events: int
    coef: float | None
    se: float | None
    hazard_ratio: float | None
    lower: float | None
    upper: float | None
    p_value: float | None
    conf_level: float = 0.95
    ties: str = TIES
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "covariate": self.covariate,
            "n_patients": self.n_patients,
            "n_intervals": self.n_intervals,
            "events": self.events,
            "coef": json_number(self.coef),
            "se": json_number(self.se),
            "hazard_ratio": json_number(self.hazard_ratio),
            "lower": json_number(self.lower),
            "upper": json_number(self.upper),
            "p_value": json_number(self.p_value),
            "test": "Wald",
            "ties": self.ties,
            "conf_level": self.conf_level,
            "reason": self.reason,
        }


def _degenerate(start: np.ndarray, stop: np.ndarray, event: np.ndarray, x: np.ndarray) -> str:
    """Why the partial likelihood has no finite maximum, or "" if it has one.

    With one binary covariate the MLE is infinite (monotone likelihood) when at every event
    time the failing subjects have the largest (or every one the smallest) covariate value of
    their risk set; it is undefined when the covariate never varies within a risk set.
    """
    if event.sum() == 0:
        return "no events"
    if np.all(x == x[0]):
        return "the covariate takes one value only"
    all_max = all_min = True
    informative = False
    for i in np.flatnonzero(event == 1):
        risk = (start < stop[i]) & (stop >= stop[i])
        lo, hi = x[risk].min(), x[risk].max()
        informative |= lo != hi
        all_max &= x[i] == hi
        all_min &= x[i] == lo
    if not informative:
        return "the covariate is constant within every risk set at the event times"
    if all_max or all_min:
        side = "exposed" if all_max else "unexposed"
        return (
            f"monotone likelihood: every event occurred in the {side} group while both were at "
            "risk, so the hazard ratio estimate is infinite"
        )
    return ""


def _exact_fit(
    model: str,
    start: np.ndarray | None,
    stop: np.ndarray,
    event: np.ndarray,
    x: np.ndarray,
    conf_level: float,
    counts: tuple[int, int, int],
) -> CoxResult:
    """The fit by ``coxph.cox_fit`` (Newton–Raphson to full convergence: R's optimum to ~1e-10,
    where lifelines stopped ~2e-7 short)."""
    from analytics.coxph import cox_fit

    try:
        fit = cox_fit(
            start=start,
            stop=stop,
            event=event,
            x=x[:, None],
            names=["early_regen"],
            conf_level=conf_level,
        )
    except ValueError as problem:
        return _undefined(model, counts, str(problem), conf_level)
    lower, upper = fit.confidence_interval()
    return CoxResult(
        model,
        "early_regen",
        *counts,
        float(fit.coef[0]),
        float(fit.se[0]),
        float(fit.hazard_ratio[0]),
        float(lower[0]),
        float(upper[0]),
        float(fit.p_values[0]),
        conf_level,
    )


def _undefined(model: str, counts: tuple[int, int, int], reason: str, conf: float) -> CoxResult:
    none = (None,) * 6
    return CoxResult(model, "early_regen", *counts, *none, conf_level=conf, reason=reason)


def cox_time_varying(split: pd.DataFrame, *, conf_level: float = 0.95) -> CoxResult:
    """The Cox model (Efron ties) of ``split_at_early_regeneration`` rows."""
    model = "Cox, early regeneration as a time-varying covariate"
    counts = (int(split["study_id"].nunique()), len(split), int(split["event"].sum()))
    start, stop = split["start"].to_numpy(float), split["stop"].to_numpy(float)
    event, x = split["event"].to_numpy(int), split["early_regen"].to_numpy(float)
    reason = _degenerate(start, stop, event, x) if len(split) else "no patients"
    if reason:
        return _undefined(model, counts, reason, conf_level)
    return _exact_fit(model, start, stop, event, x, conf_level, counts)


def cox_time_fixed(
    time: Sequence[float],
    event: Sequence[int],
    early_regen: Sequence[Any],
    *,
    conf_level: float = 0.95,
) -> CoxResult:
    """The naive Cox model with ``early_regen`` known from day 0 (immortal-time biased; shown
    only for comparison with the time-varying model). Blank ``early_regen`` rows are left out."""
    model = "Cox, early regeneration fixed at baseline (immortal-time biased)"
    frame = pd.DataFrame(
        {
            "time": np.asarray(time, float),
            "event": np.asarray(event, int),
            "early_regen": pd.to_numeric(pd.Series(list(early_regen)), errors="coerce"),
        }
    ).dropna()
    counts = (len(frame), len(frame), int(frame["event"].sum()))
    t, e, x = (frame[c].to_numpy(float) for c in ("time", "event", "early_regen"))
    reason = (
        _degenerate(np.zeros_like(t) - 1.0, t, e.astype(int), x) if len(frame) else "no patients"
    )
    if reason:
        return _undefined(model, counts, reason, conf_level)
    return _exact_fit(model, None, t, e.astype(int), x, conf_level, counts)
