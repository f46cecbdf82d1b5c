"""Restricted mean survival time (RMST) up to τ, per group and between two groups.

RMST(τ) = ∫₀^τ S(t) dt, the mean event-free time over the first τ days; its SE is R's
(``survival:::survmean``, printed by ``print(fit, rmean = tau)``): Σ over times ≤ τ of
A(tᵢ)² · dᵢ / (nᵢ(nᵢ − dᵢ)), A(tᵢ) the area under S from tᵢ to τ. The CI is RMST ± z·SE.

Between two groups (as ``survRM2::rmst2``, Uno et al. 2014): the difference with SE
√(SE₁² + SE₂²), and the ratio on the log scale with SE √(SE₁²/RMST₁² + SE₂²/RMST₂²), each with
a Wald CI and p-value. τ must lie within every group's follow-up (survRM2's rule; beyond it the
curve is not observed), so a τ past a group's last time is refused with the largest τ allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from analytics.comparisons import _labels
from analytics.survival import KaplanMeierTable, json_number, kaplan_meier, z_value


def rmst_of(km: KaplanMeierTable, tau: float) -> tuple[float, float]:
    """(RMST, SE) at τ from a KM table, as R's survmean."""
    time, surv = km.time, km.survival
    with np.errstate(divide="ignore", invalid="ignore"):
        hh = np.where(
            km.n_at_risk - km.n_events == 0,
            0.0,
            km.n_events / (km.n_at_risk * (km.n_at_risk - km.n_events).astype(float)),
        )
    keep = time <= tau
    if not keep.any():
        return float(tau), 0.0
    last = np.flatnonzero(keep).max()
    temptime = np.concatenate([time[keep], [tau]])
    tempsurv = np.concatenate([surv[keep], [surv[last]]])
    hh = np.concatenate([hh[keep], [0.0]])
    delta = np.diff(np.concatenate([[0.0], temptime]))
    rectangles = delta * np.concatenate([[1.0], tempsurv[:-1]])
    var = float(np.sum(np.cumsum(rectangles[1:][::-1]) ** 2 * hh[::-1][1:]))
    return float(rectangles.sum()), float(np.sqrt(var))


def rmst_compare(
    time: Sequence[float],
    event: Sequence[int],
    group: Sequence[Any],
    *,
    tau: float,
    levels: Sequence[Any] | None = None,
    conf_level: float = 0.95,
) -> dict[str, Any]:
    """RMST at τ per group; with exactly two groups, difference (first − second) and ratio."""
    labels = _labels(group)
    t, e = np.asarray(time, float), np.asarray(event, float)
    if len(labels) != len(t):
        raise ValueError("group must give one value per patient")
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError("τ must be a number of days > 0")
    wanted = (
        [str(v) for v in levels]
        if levels is not None
        else sorted({lab for lab in labels if lab is not None})
    )
    z = z_value(conf_level)
    groups = []
    for lab in wanted:
        member = labels == lab
        if not member.any():
            raise ValueError(f"no patients in group {lab!r}")
        km = kaplan_meier(t[member], e[member], conf_level=conf_level)
        if tau > km.time[-1]:
            allowed = min(
                float(np.max(t[labels == other])) for other in wanted if (labels == other).any()
            )
            raise ValueError(
                f"τ = {tau:g} days is past the last follow-up of group {lab!r} "
                f"({km.time[-1]:g} days); choose τ ≤ {allowed:g}"
            )
        value, se = rmst_of(km, tau)
        groups.append(
            {
                "label": lab,
                "n": int(member.sum()),
                "events": int(e[member].sum()),
                "rmst": value,
                "se": se,
                "lower": value - z * se,
                "upper": value + z * se,
            }
        )
    out: dict[str, Any] = {
        "tau": float(tau),
        "groups": groups,
        "conf_level": conf_level,
        "method": "RMST = area under the KM curve to τ; SE as R survival (print(fit, rmean = τ))",
    }
    if len(groups) == 2:
        a, b = groups
        diff = a["rmst"] - b["rmst"]
        se_diff = float(np.hypot(a["se"], b["se"]))
        out["difference"] = _wald(diff, se_diff, z, log=False)
        if a["rmst"] > 0 and b["rmst"] > 0:
            log_ratio = float(np.log(a["rmst"] / b["rmst"]))
            se_log = float(np.hypot(a["se"] / a["rmst"], b["se"] / b["rmst"]))
            out["ratio"] = _wald(log_ratio, se_log, z, log=True)
        out["contrast"] = f"{a['label']} vs {b['label']} (survRM2 rmst2)"
    return out


def _wald(estimate: float, se: float, z: float, *, log: bool) -> dict[str, Any]:
    p = float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else None
    lower, upper = estimate - z * se, estimate + z * se
    if log:
        estimate, lower, upper = np.exp(estimate), np.exp(lower), np.exp(upper)
    return {
        "estimate": json_number(estimate),
        "se": json_number(se),
        "lower": json_number(lower),
        "upper": json_number(upper),
        "p_value": json_number(p),
    }
