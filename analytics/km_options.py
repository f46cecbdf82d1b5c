"""Kaplan–Meier bands other than R's default, S(t) at chosen times and any quantile.

Each function ports what R's ``survival`` does (version 3.x, ``survfit_confint``,
``summary.survfit(times =)``, ``quantile.survfit``) on the table of ``survival.kaplan_meier``:

* ``conf.type = "log"`` (the default): S·exp(±z·σ), upper capped at 1, none where S = 0;
* ``"log-log"``: exp(−exp(log(−log S) ± z·σ / log S)), none where S is 0 or 1;
* ``"plain"``: S ± z·σ·S clipped to [0, 1];

σ being R's ``std.err`` (Greenwood SE of the cumulative hazard). ``summary(fit, times =)``'s
standard error is that of S itself, S·σ. Quantile p is the first time S(t) ≤ 1 − p (R's
``findq``, with its midpoint rule where the curve is flat at 1 − p); its CI takes the same
rule on the lower and upper band.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analytics.survival import R_TOLERANCE, KaplanMeierTable, _r_findq, json_number, z_value

CONF_TYPES = ("log", "log-log", "plain")


def km_band(km: KaplanMeierTable, conf_type: str = "log") -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) at every row of ``km`` for R's ``conf.type``; NaN where R gives NA."""
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {', '.join(CONF_TYPES)}, not {conf_type!r}")
    z = z_value(km.conf_level)
    p, se = km.survival, km.std_err_log
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if conf_type == "plain":
            half = se * p * z
            return np.maximum(p - half, 0), np.minimum(p + half, 1)
        if conf_type == "log":
            xx = np.where(p == 0, np.nan, p)
            return xx * np.exp(-z * se), np.minimum(xx * np.exp(z * se), 1)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        shift = z * se / np.log(xx)
        loglog = np.log(-np.log(xx))
        return np.exp(-np.exp(loglog - shift)), np.exp(-np.exp(loglog + shift))


def survival_at_times(
    km: KaplanMeierTable, times: Sequence[float], *, conf_type: str = "log"
) -> list[dict[str, Any]]:
    """R's ``summary(fit, times = times)``: S(t), its SE, CI, number at risk at t and events
    since the previous requested time. A time past the last follow-up is refused (R drops it)."""
    asked = np.asarray(times, float)
    if asked.ndim != 1 or not len(asked) or not np.all(np.isfinite(asked)) or np.any(asked < 0):
        raise ValueError("give one or more times >= 0 (days)")
    if np.any(np.diff(asked) <= 0):
        raise ValueError("give the times in increasing order, each once")
    last = float(km.time[-1]) if len(km.time) else 0.0
    if asked[-1] > last:
        raise ValueError(f"time {asked[-1]:g} is after the last follow-up ({last:g} days)")
    lower, upper = km_band(km, conf_type)
    rows, previous = [], -np.inf
    for t in asked:
        i = int(np.searchsorted(km.time, t, side="right")) - 1
        after = np.searchsorted(km.time, t, side="left")
        window = (km.time > previous) & (km.time <= t)
        if i < 0:
            s, se, lo, hi = 1.0, 0.0, 1.0, 1.0
        else:
            s = float(km.survival[i])
            se, lo, hi = s * float(km.std_err_log[i]), lower[i], upper[i]
        rows.append(
            {
                "time": float(t),
                "n_at_risk": int(km.n_at_risk[after]),
                "n_events": int(km.n_events[window].sum()),
                "survival": json_number(s),
                "std_err": json_number(se),
                "lower": json_number(lo),
                "upper": json_number(hi),
                "conf_type": conf_type,
            }
        )
        previous = t
    return rows


def km_quantile(
    km: KaplanMeierTable, p: float, *, conf_type: str = "log", origin: float = 0.0
) -> dict[str, Any]:
    """R's ``quantile(fit, probs = p, conf.type)``: the time by which a fraction p had the
    event, with its CI; None where the curve (or band) does not get there."""
    if not 0 < p < 1:
        raise ValueError("the quantile must be between 0 and 1 (0.5 is the median)")
    lower, upper = km_band(km, conf_type)
    x = np.concatenate(([origin], km.time))

    def at(curve: np.ndarray) -> float | None:
        value = _r_findq(x, np.concatenate(([0.0], 1.0 - curve)), p, R_TOLERANCE)
        return None if np.isnan(value) else value

    return {
        "probability": p,
        "quantile": at(km.survival),
        "lower": at(lower),
        "upper": at(upper),
        "conf_type": conf_type,
        "conf_level": km.conf_level,
    }
