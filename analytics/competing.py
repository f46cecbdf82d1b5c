"""Cumulative incidence of relapse with death without relapse as a competing risk (or of any
number of causes, coded 1, 2, 3, ...).

The Aalen–Johansen estimator is computed here rather than with lifelines'
``AalenJohansenFitter``, which breaks tied times by random jitter (so its answer depends on a
seed and differs from R on data with ties, i.e. on every real day-resolution dataset).

With cause-specific hazards λ₁ = d₁/n (relapse) and λ₂ = d₂/n (death without relapse) at each
distinct time, the event-free probability is S(t) = Π(1 − λ₁ − λ₂) and the cumulative incidence
of cause k is F_k(t) = Σ S(t⁻)·λ_k. This is what ``survfit(Surv(time, factor(status)) ~ 1)``
returns as ``pstate``. Its standard error is R's default for multi-state curves, the
infinitesimal jackknife (the square root of the summed squared influence of each patient), and
the 95 % CI uses R's default log transform: F·exp(±z·SE/F), upper capped at 1.

``variance="cuminc"`` gives instead the variance ``cmprsk::cuminc`` reports (Gray's delta-method
estimator, with the other causes pooled and ties counted hypergeometrically), which, as in
cuminc, is updated only at the times of the cause's own events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.survival import json_list, json_number, z_value

CAUSES = {1: "relapse", 2: "death_without_relapse"}
VARIANCES = {
    "jackknife": "infinitesimal jackknife (R survfit default for multi-state)",
    "cuminc": "delta method as cmprsk::cuminc (Gray), updated at the cause's event times",
}


def cause_name(cause: int) -> str:
    return CAUSES.get(cause, f"cause_{cause}")


@dataclass(frozen=True, eq=False)
class CumulativeIncidenceTable:
    """Aalen–Johansen estimates at every distinct observed time. Arrays indexed [cause, time]
    for ``cif``/``se``/``lower``/``upper``/``n_events``, row k for cause ``causes[k]`` (by
    default row 0 = relapse, 1 = death without relapse); ``n_relapse``/``n_death`` count
    codes 1 and 2."""

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
    causes: tuple[int, ...] = (1, 2)
    n_events: np.ndarray | None = None
    variance: str = "jackknife"

    def at(self, day: float, cause: int = 1) -> CumulativeIncidencePoint:
        """The estimate at ``day`` (a right-continuous step; 0 before the first time)."""
        row = int(np.searchsorted(self.time, day, side="right")) - 1
        if cause not in self.causes:
            raise ValueError(f"cause {cause!r} is not one of {list(self.causes)}")
        k = self.causes.index(cause)
        if row < 0:
            return CumulativeIncidencePoint(float(day), cause_name(cause), 0.0, 0.0, None, None)
        return CumulativeIncidencePoint(
            float(day),
            cause_name(cause),
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
            "variance": VARIANCES[self.variance],
        }
        default = self.causes == (1, 2)
        if not default:
            out["causes"] = list(self.causes)
        for k, cause in enumerate(self.causes):
            out[cause_name(cause)] = {
                "cif": json_list(self.cif[k]),
                "se": json_list(self.se[k]),
                "lower": json_list(self.lower[k]),
                "upper": json_list(self.upper[k]),
            }
            if not default and self.n_events is not None:
                out[cause_name(cause)]["n_events"] = json_list(self.n_events[k])
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
    time: Sequence[float],
    status: Sequence[int],
    *,
    conf_level: float = 0.95,
    causes: Sequence[int] | None = None,
    variance: str = "jackknife",
) -> CumulativeIncidenceTable:
    """Aalen–Johansen cumulative incidence of each cause; status 0 is censored, 1 relapse,
    2 death without relapse, and any further positive integer another competing cause.
    ``causes`` (default: 1, 2 and every other code observed) orders the table's rows; a code
    in ``status`` must be one of them. Ties between causes at one time are handled exactly
    (no jitter)."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {sorted(VARIANCES)}, not {variance!r}")
    t = np.asarray(time, dtype=float)
    s = np.asarray(status, dtype=float)
    if t.shape != s.shape or t.ndim != 1 or not len(t):
        raise ValueError("time and status must be non-empty, one-dimensional, same length")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and >= 0")
    if not np.all(np.isfinite(s)) or np.any(s < 0) or np.any(s != np.round(s)):
        raise ValueError(
            "status must be 0 (censored) or a positive integer cause code "
            "(1 relapse, 2 death without relapse, 3... other competing causes)"
        )
    s = s.astype(int)
    observed = sorted({int(c) for c in s[s > 0]})
    if causes is None:
        codes = tuple(sorted({1, 2, *observed}))
    else:
        codes = tuple(causes)
        if not codes:
            raise ValueError("causes must name at least one cause code")
        bad = [c for c in codes if isinstance(c, bool) or not isinstance(c, (int, np.integer))]
        if bad or any(c < 1 for c in codes):
            raise ValueError(f"cause codes must be positive integers, not {list(codes)}")
        codes = tuple(int(c) for c in codes)
        if len(set(codes)) != len(codes):
            raise ValueError(f"cause codes must not repeat: {list(codes)}")
        missing = [c for c in observed if c not in codes]
        if missing:
            raise ValueError(f"status has cause codes {missing} not in causes {list(codes)}")
    n_causes = len(codes)

    grid = np.unique(t)
    m, n_obs = len(grid), len(t)
    n_at_risk = np.zeros(m, dtype=int)
    counts = np.zeros((1 + n_causes, m), dtype=int)
    event_free = np.zeros(m)
    cif, se = np.zeros((n_causes, m)), np.zeros((n_causes, m))
    surv = 1.0
    cum = np.zeros(n_causes)
    # influence of each patient on S and on F_k (d estimate / d weight_i at weight 1)
    infl_s = np.zeros(n_obs)
    infl_f = np.zeros((n_causes, n_obs))
    # cmprsk::cuminc's variance: V = v1 - 2 F v2 + F^2 v3, sums over the event times
    v1, v2, v3 = np.zeros(n_causes), np.zeros(n_causes), np.zeros(n_causes)
    var_cuminc = np.zeros(n_causes)
    for j, u in enumerate(grid):
        at_risk = t >= u
        n = at_risk.sum()
        here = t == u
        d = np.array([(here & (s == cause)).sum() for cause in codes], dtype=float)
        n_at_risk[j] = n
        counts[:, j] = [(here & (s == 0)).sum(), *d]
        hazard = d / n
        d_hazard = np.array(
            [((here & (s == c)) - at_risk * hazard[k]) / n for k, c in enumerate(codes)]
        )
        infl_f += np.outer(hazard, infl_s) + surv * d_hazard
        cum += surv * hazard
        surv_before = surv
        infl_s = infl_s * (1.0 - hazard.sum()) - surv * d_hazard.sum(axis=0)
        surv *= 1.0 - hazard.sum()
        event_free[j], cif[:, j] = surv, cum
        se[:, j] = np.sqrt((infl_f**2).sum(axis=1))
        if variance == "cuminc":
            if d.sum() > 0:
                _cuminc_step(v1, v2, v3, var_cuminc, cum, d, float(n), surv_before)
            se[:, j] = np.sqrt(np.maximum(var_cuminc, 0.0))

    z = z_value(conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = cif > 0
        rel = np.where(positive, se / np.where(positive, cif, 1.0), np.nan)
        lower = np.where(positive, cif * np.exp(-z * rel), np.nan)
        upper = np.where(positive, np.minimum(cif * np.exp(z * rel), 1.0), np.nan)
    by_code = dict(zip(codes, counts[1:], strict=True))
    none = np.zeros(m, dtype=int)
    return CumulativeIncidenceTable(
        time=grid,
        n_at_risk=n_at_risk,
        n_relapse=by_code.get(1, none),
        n_death=by_code.get(2, none),
        n_censored=counts[0],
        event_free=event_free,
        cif=cif,
        se=se,
        lower=lower,
        upper=upper,
        conf_level=conf_level,
        causes=codes,
        n_events=counts[1:],
        variance=variance,
    )


def _cuminc_step(v1, v2, v3, var, cum, d, n, surv_before) -> None:
    """One event time of cmprsk's variance recursion, for every cause at once: the cause's own
    events and the pooled other causes each add a term (a - F·b)² · S(t⁻)² · d(n-d)/(n²(n-1))."""
    total = d.sum()
    surv_after = surv_before * (n - total) / n
    for k in range(len(d)):
        own, other = d[k], total - d[k]
        for events, own_cause in ((other, False), (own, True)):
            if events <= 0 or (not own_cause and surv_after <= 0):
                continue
            ties = 1.0 if events <= 1 else 1.0 - (events - 1.0) / (n - 1.0)
            w = surv_before * surv_before * ties * events / (n * n)
            b = 1.0 / surv_after if surv_after > 0 else 0.0
            a = (1.0 if own_cause else 0.0) + b * cum[k]
            v1[k] += a * a * w
            v2[k] += a * b * w
            v3[k] += b * b * w
        if own > 0:
            var[k] = v1[k] + cum[k] * cum[k] * v3[k] - 2.0 * cum[k] * v2[k]
