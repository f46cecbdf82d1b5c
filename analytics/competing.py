"""Cumulative incidence of relapse with death without relapse as a competing risk.

The Aalen–Johansen estimator is computed here rather than with lifelines'
``AalenJohansenFitter``, which breaks tied times by random jitter (so its answer depends on a
seed and differs from R on data with ties, i.e. on every real day-resolution dataset).

With cause-specific hazards λ₁ = d₁/n (relapse) and λ₂ = d₂/n (death without relapse) at each
distinct time, the event-free probability is S(t) = Π(1 − λ₁ − λ₂) and the cumulative incidence
of cause k is F_k(t) = Σ S(t⁻)·λ_k. This is what ``survfit(Surv(time, factor(status)) ~ 1)``
returns as ``pstate``. Its standard error is R's default for multi-state curves, the
infinitesimal jackknife (the square root of the summed squared influence of each patient), and
the 95 % CI uses R's default log transform: F·exp(±z·SE/F), upper capped at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.survival import json_list, json_number, z_value

CAUSES = {1: "relapse", 2: "death_without_relapse"}


@dataclass(frozen=True, eq=False)
class CumulativeIncidenceTable:
    """Aalen–Johansen estimates at every distinct observed time. Arrays indexed [cause, time]
    for ``cif``/``se``/``lower``/``upper`` with cause 0 = relapse, 1 = death without relapse."""

    time: np.ndarray
    n_at_risk: np.ndarray
    n_relapse: np.ndarray
    n_death: np.ndarray
    n_censored: np.ndarray
    event_free: np.ndarray
    cif: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    conf_level: float = 0.95

    def at(self, day: float, cause: int = 1) -> CumulativeIncidencePoint:
        """The estimate at ``day`` (a right-continuous step; 0 before the first time)."""
        row = int(np.searchsorted(self.time, day, side="right")) - 1
        k = cause - 1
        if row < 0:
            return CumulativeIncidencePoint(float(day), CAUSES[cause], 0.0, 0.0, None, None)
        return CumulativeIncidencePoint(
            float(day),
            CAUSES[cause],
            float(self.cif[k, row]),
            float(self.se[k, row]),
            json_number(self.lower[k, row]),
            json_number(self.upper[k, row]),
            beyond_follow_up=bool(day > self.time[-1]),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": json_list(self.time),
            "n_at_risk": json_list(self.n_at_risk),
            "n_relapse": json_list(self.n_relapse),
            "n_death": json_list(self.n_death),
            "n_censored": json_list(self.n_censored),
            "event_free": json_list(self.event_free),
            "conf_level": self.conf_level,
            "band": "log",
            "variance": "infinitesimal jackknife (R survfit default for multi-state)",
        }
        for k, cause in enumerate(CAUSES.values()):
            out[cause] = {
                "cif": json_list(self.cif[k]),
                "se": json_list(self.se[k]),
                "lower": json_list(self.lower[k]),
                "upper": json_list(self.upper[k]),
            }
        return out


@dataclass(frozen=True)
class CumulativeIncidencePoint:
    day: float
    cause: str
    estimate: float
    se: float
    lower: float | None
    upper: float | None
    beyond_follow_up: bool = False  # the day is after the last observed time: carried forward

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": json_number(self.day),
            "cause": self.cause,
            "estimate": json_number(self.estimate),
            "se": json_number(self.se),
            "lower": json_number(self.lower),
            "upper": json_number(self.upper),
            "beyond_follow_up": self.beyond_follow_up,
        }


def aalen_johansen(
    time: Sequence[float], status: Sequence[int], *, conf_level: float = 0.95
) -> CumulativeIncidenceTable:
    """Aalen–Johansen cumulative incidence for status 1 (relapse) and 2 (death without relapse);
    status 0 is censored. Ties between causes at one time are handled exactly (no jitter)."""
    t = np.asarray(time, dtype=float)
    s = np.asarray(status, dtype=float)
    if t.shape != s.shape or t.ndim != 1 or not len(t):
        raise ValueError("time and status must be non-empty, one-dimensional, same length")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and >= 0")
    if not np.all(np.isin(s, (0, 1, 2))):
        raise ValueError("status must be 0 (censored), 1 (relapse) or 2 (competing death)")
    s = s.astype(int)

    grid = np.unique(t)
    m, n_obs = len(grid), len(t)
    n_at_risk = np.zeros(m, dtype=int)
    counts = np.zeros((3, m), dtype=int)
    event_free = np.zeros(m)
    cif, se = np.zeros((2, m)), np.zeros((2, m))
    surv = 1.0
    cum = np.zeros(2)
    # influence of each patient on S and on F_k (d estimate / d weight_i at weight 1)
    infl_s = np.zeros(n_obs)
    infl_f = np.zeros((2, n_obs))
    for j, u in enumerate(grid):
        at_risk = t >= u
        n = at_risk.sum()
        here = t == u
        d = np.array([(here & (s == cause)).sum() for cause in (1, 2)], dtype=float)
        n_at_risk[j] = n
        counts[:, j] = [(here & (s == 0)).sum(), d[0], d[1]]
        hazard = d / n
        d_hazard = np.array([((here & (s == c)) - at_risk * hazard[c - 1]) / n for c in (1, 2)])
        infl_f += np.outer(hazard, infl_s) + surv * d_hazard
        cum += surv * hazard
        infl_s = infl_s * (1.0 - hazard.sum()) - surv * d_hazard.sum(axis=0)
        surv *= 1.0 - hazard.sum()
        event_free[j], cif[:, j] = surv, cum
        se[:, j] = np.sqrt((infl_f**2).sum(axis=1))

    z = z_value(conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = cif > 0
        rel = np.where(positive, se / np.where(positive, cif, 1.0), np.nan)
        lower = np.where(positive, cif * np.exp(-z * rel), np.nan)
        upper = np.where(positive, np.minimum(cif * np.exp(z * rel), 1.0), np.nan)
    return CumulativeIncidenceTable(
        time=grid,
        n_at_risk=n_at_risk,
        n_relapse=counts[1],
        n_death=counts[2],
        n_censored=counts[0],
        event_free=event_free,
        cif=cif,
        se=se,
        lower=lower,
        upper=upper,
        conf_level=conf_level,
    )
