"""Kaplan–Meier estimation, its confidence band, medians and risk tables.

Statistical choices (each one matches R's ``survival::survfit`` defaults, the reference named in
CLINICAL.md section 5):

* Variance: Greenwood. ``std_err_log`` is R's ``std.err`` (the SE of the cumulative hazard,
  sqrt(sum d / (n (n - d)))); the SE of S itself is ``S * std_err_log``.
* Band: ``conf.type = "log"``, i.e. S·exp(±z·std_err_log), the upper limit capped at 1 and no
  band where S = 0. lifelines uses log(−log) by default, so we do not take its band.
* Median CI (Brookmeyer–Crowley): the first times the lower / upper band reach 0.5, computed by
  an exact port of R's ``quantile.survfit`` (midpoint rule where a curve is flat at 0.5).
* Symmetric median CI (Collett §2.4): median ± z·SE with SE = SE(S(t50)) / f(t50), the form
  behind published SPSS-style intervals such as the study's "290 (163–416)".

z is the exact normal quantile (1.959964 for 95 %), as in R, except in the symmetric median CI,
whose multiplier is exactly 1.96 (CLINICAL.md section 5: the published figures' software uses it;
1.959964 would put the limits about 0.0015 days away from the published method's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

#: R's default tolerance in quantile.survfit (sqrt of machine epsilon).
R_TOLERANCE = float(np.sqrt(np.finfo(float).eps))
BROOKMEYER_CROWLEY = "Brookmeyer-Crowley (R survfit quantile, log-transformed Greenwood band)"
COLLETT_SYMMETRIC = "median ± 1.96·SE, SE from Collett §2.4 (Greenwood SE / density, ε = 0.05)"
#: The symmetric (SPSS-style) median CI's multiplier at 95 %: exactly 1.96, not qnorm(0.975).
SYMMETRIC_Z_95 = 1.96


def z_value(conf_level: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.959964)."""
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def json_number(value: Any) -> float | int | None:
    """A finite Python number, or None for NaN / infinity / None (JSON has no NaN)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if np.isfinite(number) else None


def json_list(values: Sequence[Any] | np.ndarray) -> list[float | int | None]:
    return [json_number(v) for v in values]


def as_arrays(time: Sequence[float], event: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate (time, event) arrays: same length, finite non-negative times, 0/1 events."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError("time and event must be one-dimensional and of the same length")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("survival times must be finite and >= 0")
    if not np.all(np.isin(e, (0, 1))):
        raise ValueError("event indicators must be 0 (censored) or 1 (event)")
    return t, e.astype(int)


@dataclass(frozen=True, eq=False)
class KaplanMeierTable:
    """The KM estimate at every distinct observed time (event or censoring), as R prints it."""

    time: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    n_censored: np.ndarray
    survival: np.ndarray
    std_err_log: np.ndarray  # R's std.err: SE of -log S (Greenwood)
    se_survival: np.ndarray  # Greenwood SE of S
    lower: np.ndarray  # log-transformed band, NaN where S = 0
    upper: np.ndarray
    conf_level: float = 0.95
    band: str = "log"

    @property
    def n(self) -> int:
        return int(self.n_at_risk[0]) if len(self.time) else 0

    @property
    def events(self) -> int:
        return int(self.n_events.sum())

    def survival_at(self, times: Sequence[float]) -> np.ndarray:
        """S(t) as a right-continuous step function; 1 before the first observed time."""
        idx = np.searchsorted(self.time, np.asarray(times, dtype=float), side="right") - 1
        padded = np.concatenate(([1.0], self.survival))
        return padded[idx + 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": json_list(self.time),
            "n_at_risk": json_list(self.n_at_risk),
            "n_events": json_list(self.n_events),
            "n_censored": json_list(self.n_censored),
            "survival": json_list(self.survival),
            "std_err_log": json_list(self.std_err_log),
            "se_survival": json_list(self.se_survival),
            "lower": json_list(self.lower),
            "upper": json_list(self.upper),
            "conf_level": self.conf_level,
            "band": self.band,
        }


def kaplan_meier(
    time: Sequence[float], event: Sequence[int], *, conf_level: float = 0.95
) -> KaplanMeierTable:
    """Kaplan–Meier estimate with Greenwood SE and a log-transformed band (R's default)."""
    t, e = as_arrays(time, event)
    grid = np.unique(t)
    n_at_risk = np.array([(t >= u).sum() for u in grid], dtype=int)
    n_events = np.array([e[t == u].sum() for u in grid], dtype=int)
    n_censored = np.array([(t == u).sum() for u in grid], dtype=int) - n_events
    survival = np.cumprod(1.0 - n_events / np.maximum(n_at_risk, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            n_events > 0, n_events / (n_at_risk * (n_at_risk - n_events).astype(float)), 0.0
        )
    std_err_log = np.sqrt(np.cumsum(terms))  # infinite once S reaches 0, as in R
    with np.errstate(invalid="ignore"):
        se_survival = np.where(survival > 0, survival * std_err_log, np.nan)
    z = z_value(conf_level)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        positive = survival > 0
        lower = np.where(positive, survival * np.exp(-z * std_err_log), np.nan)
        upper = np.where(positive, np.minimum(survival * np.exp(z * std_err_log), 1.0), np.nan)
    return KaplanMeierTable(
        time=grid,
        n_at_risk=n_at_risk,
        n_events=n_events,
        n_censored=n_censored,
        survival=survival,
        std_err_log=std_err_log,
        se_survival=se_survival,
        lower=lower,
        upper=upper,
        conf_level=conf_level,
    )


@dataclass(frozen=True)
class MedianEstimate:
    """A median survival time with its CI; None where the curve does not get there."""

    method: str
    median: float | None
    lower: float | None
    upper: float | None
    se: float | None = None
    conf_level: float = 0.95
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "median": json_number(self.median),
            "lower": json_number(self.lower),
            "upper": json_number(self.upper),
            "se": json_number(self.se),
            "conf_level": self.conf_level,
            "note": self.note,
        }


def _r_findq(x: np.ndarray, y: np.ndarray, p: float, tol: float) -> float:
    """Port of survival:::findq: the time at which the cumulative curve ``y`` reaches ``p``.

    ``x`` starts at the time origin and ``y`` = 1 − curve (NaN where the band is undefined).
    Like R, the level is found with ``approx(method="constant", f=1)``, i.e. the smallest
    curve value ≥ p (with tolerance); a curve flat at exactly p gives the midpoint of the
    interval, and a curve that ends flat at p gives the midpoint up to the last time.
    """
    if np.all(np.isnan(y)) or np.nanmax(y) < p:
        return float("nan")
    xmax = x[-1]
    keep = np.ones(len(y), dtype=bool)
    seen: list[float] = []
    seen_nan = False
    for i, value in enumerate(y):  # duplicated() keeps the first occurrence of each level
        if np.isnan(value):
            keep[i] = not seen_nan
            seen_nan = True
        elif value in seen:
            keep[i] = False
        else:
            seen.append(value)
    x, y = x[keep], y[keep]

    def first_index(shift: float) -> int | None:
        levels = y + shift
        ok = ~np.isnan(levels) & (levels >= p)
        if not ok.any() or p < np.nanmin(levels):
            return None
        candidates = np.flatnonzero(ok)
        return int(candidates[np.argmin(levels[candidates])])

    i1, i2 = first_index(tol), first_index(-tol)
    quant = float("nan") if i1 is None or i2 is None else (x[i1] + x[i2]) / 2
    if p == 0:
        quant = x[0]
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol and i1 is not None:
        quant = (x[i1] + xmax) / 2
    return float(quant)


def median_brookmeyer_crowley(km: KaplanMeierTable, *, origin: float = 0.0) -> MedianEstimate:
    """Median with the Brookmeyer–Crowley CI exactly as R's ``quantile(survfit(...))`` gives it.

    The median is where S reaches 0.5; the lower limit is where the lower band reaches 0.5
    (it falls first) and the upper limit where the upper band does (None: not reached).
    """
    x = np.concatenate(([origin], km.time))

    def at(curve: np.ndarray) -> float | None:
        value = _r_findq(x, np.concatenate(([0.0], 1.0 - curve)), 0.5, R_TOLERANCE)
        return None if np.isnan(value) else value

    median, lower, upper = at(km.survival), at(km.lower), at(km.upper)
    note = None
    if median is None:
        note = "median not reached: S(t) stays above 0.5"
    elif upper is None:
        note = "upper limit not reached: the upper band stays above 0.5"
    return MedianEstimate(BROOKMEYER_CROWLEY, median, lower, upper, None, km.conf_level, note)


def median_collett_symmetric(km: KaplanMeierTable, *, epsilon: float = 0.05) -> MedianEstimate:
    """Median ± z·SE with Collett's (§2.4) standard error of a KM percentile; z = 1.96 at 95 %.

    t50 is Collett's estimate, the smallest event time with S ≤ 0.5 (no midpoint rule, so it
    can differ from R's median when S is exactly 0.5 on an interval). SE(t50) = SE(S(t50)) / f,
    f = (S(u) − S(l)) / (l − u), u the largest event time with S ≥ 0.5 + ε (the time origin,
    S = 1, if there is none) and l the smallest event time with S ≤ 0.5 − ε. Comparisons use
    R's tolerance so that a product that should equal 0.55 is not lost to rounding.
    """
    method = COLLETT_SYMMETRIC
    is_event = km.n_events > 0
    times, surv, se = km.time[is_event], km.survival[is_event], km.se_survival[is_event]
    reached = np.flatnonzero(surv <= 0.5 + R_TOLERANCE)
    if not len(reached):
        return MedianEstimate(method, None, None, None, None, km.conf_level, "median not reached")
    t50 = float(times[reached[0]])
    if surv[reached[0]] <= 0:
        note = (
            "SE undefined: S(t) drops to 0 at the median, where Greenwood's variance is undefined"
        )
        return MedianEstimate(method, t50, None, None, None, km.conf_level, note)
    se_s = float(se[reached[0]])
    above = np.flatnonzero(surv >= 0.5 + epsilon - R_TOLERANCE)
    u, s_u = (float(times[above[-1]]), float(surv[above[-1]])) if len(above) else (0.0, 1.0)
    below = np.flatnonzero(surv <= 0.5 - epsilon + R_TOLERANCE)
    if not len(below):
        note = f"SE undefined: S(t) never falls to {0.5 - epsilon:g}, so the density is unknown"
        return MedianEstimate(method, t50, None, None, None, km.conf_level, note)
    lo, s_l = float(times[below[0]]), float(surv[below[0]])
    density = (s_u - s_l) / (lo - u)
    se_t50 = se_s / density
    z = SYMMETRIC_Z_95 if km.conf_level == 0.95 else z_value(km.conf_level)
    return MedianEstimate(method, t50, t50 - z * se_t50, t50 + z * se_t50, se_t50, km.conf_level)


@dataclass(frozen=True)
class RiskTable:
    """Numbers under a KM plot. At each time t: at risk = time ≥ t (as R's summary.survfit);
    events / censored = before t, so at_risk + events_before + censored_before = n."""

    times: list[float]
    at_risk: list[int]
    events_before: list[int]
    censored_before: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "times": json_list(self.times),
            "at_risk": self.at_risk,
            "events_before": self.events_before,
            "censored_before": self.censored_before,
        }


def risk_table(time: Sequence[float], event: Sequence[int], at_times: Sequence[float]) -> RiskTable:
    """Number at risk (and events / censorings so far) at chosen times, e.g. 0, 90, 180, 365."""
    t, e = as_arrays(time, event)
    return RiskTable(
        times=[float(x) for x in at_times],
        at_risk=[int((t >= x).sum()) for x in at_times],
        events_before=[int(((t < x) & (e == 1)).sum()) for x in at_times],
        censored_before=[int(((t < x) & (e == 0)).sum()) for x in at_times],
    )


@dataclass(frozen=True)
class KMCurve:
    """What a plot needs: the step function from the origin with its band, and censor marks."""

    label: str
    step_time: list[float]
    step_survival: list[float]
    step_lower: list[float | None]
    step_upper: list[float | None]
    censor_time: list[float]
    censor_survival: list[float]
    risk: RiskTable | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "step_time": json_list(self.step_time),
            "step_survival": json_list(self.step_survival),
            "step_lower": json_list(self.step_lower),
            "step_upper": json_list(self.step_upper),
            "censor_time": json_list(self.censor_time),
            "censor_survival": json_list(self.censor_survival),
            "risk": self.risk.to_dict() if self.risk else None,
            **self.extra,
        }


def km_curve(
    time: Sequence[float],
    event: Sequence[int],
    *,
    label: str = "",
    risk_times: Sequence[float] | None = None,
    conf_level: float = 0.95,
) -> KMCurve:
    """Plot-ready KM curve (origin 0 with S = 1, steps at event times, censor marks)."""
    km = kaplan_meier(time, event, conf_level=conf_level)
    censored = km.n_censored > 0
    return KMCurve(
        label=label,
        step_time=[0.0, *km.time.tolist()],
        step_survival=[1.0, *km.survival.tolist()],
        step_lower=[1.0, *json_list(km.lower)],
        step_upper=[1.0, *json_list(km.upper)],
        censor_time=km.time[censored].tolist(),
        censor_survival=km.survival[censored].tolist(),
        risk=risk_table(time, event, risk_times) if risk_times is not None else None,
    )
