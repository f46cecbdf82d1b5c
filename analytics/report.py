"""Every headline figure of CLINICAL.md section 5 in one JSON-serialisable dict.

``headline_report`` is what the ``survival_report`` command prints, what a snapshot stores and
what ``scripts/reproduce_headline.R`` recomputes independently; the keys are stable. All
numbers are plain Python floats/ints, and NaN never appears (None instead), so the dict goes
through ``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from analytics.adjusted import adjusted_early_regeneration
from analytics.comparisons import landmark_analysis, logrank
from analytics.competing import CAUSES, aalen_johansen
from analytics.cox import cox_time_fixed, cox_time_varying, split_at_early_regeneration
from analytics.endpoints import RfsOrigin, complete_remission_cohort, os_endpoint, rfs_endpoint
from analytics.proportions import proportion_ci
from analytics.survival import (
    json_number,
    kaplan_meier,
    median_brookmeyer_crowley,
    median_collett_symmetric,
    risk_table,
)
from patients.vocabulary import ANTI_LEUKEMIC, IMMUNOMODULATORY

DEFAULT_RISK_DAYS: tuple[float, ...] = (0, 90, 180, 365, 730, 1095)
DEFAULT_CIR_DAYS: tuple[float, ...] = (180, 365)

#: Readable group names for the log-rank comparisons: (column, {value: label}). The labels are
#: stored in English (the report's JSON, the CSV and API stay neutral) and marked as messages:
#: pages and figures show them translated (gettext(label)).
COMPARISONS: dict[str, tuple[str, dict[str, str]]] = {
    "early_regeneration": (
        "early_regen",
        {"1": gettext_noop("early regeneration"), "0": gettext_noop("no early regeneration")},
    ),
    "preemptive_category": (
        "preemptive_category",
        {
            ANTI_LEUKEMIC: gettext_noop("anti-leukemic"),
            IMMUNOMODULATORY: gettext_noop("immunomodulatory"),
        },
    ),
    "mrd_positive": (
        "mrd_positive",
        {"1": gettext_noop("MRD positive"), "0": gettext_noop("MRD negative")},
    ),
    "car_loss": (
        "car_loss",
        {"1": gettext_noop("CAR copies lost"), "0": gettext_noop("CAR copies retained")},
    ),
}

# The comparisons as people read them on the dashboard (the JSON keeps the short names).
COMPARISON_LABELS = {
    "early_regeneration": _("early B-cell regeneration (≤ day 45) vs none"),
    "preemptive_category": _("anti-leukemic vs immunomodulatory pre-emption, early regenerators"),
    "mrd_positive": _("BM MRD positive vs negative"),
    "car_loss": _("BM CAR copies lost vs retained"),
}


def group_key(value: Any) -> str | None:
    """A dataset value as a comparison key: 1.0 / 1 -> "1", text as is, blank -> None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(int(value)) if isinstance(value, (int, float, np.integer)) else str(value)


_as_key = group_key  # the name analytics/figures.py imported first


def _comparison(endpoint: pd.DataFrame, key: str) -> dict[str, Any]:
    column, names = COMPARISONS[key]
    rows = endpoint
    if key == "preemptive_category":  # the study's question: what to do once regeneration is seen
        rows = endpoint.loc[endpoint["early_regen"].map(group_key) == "1"]
    groups = [names.get(group_key(v) or "", None) for v in rows[column]]
    result = logrank(
        rows["time"], rows["event"], groups, levels=list(names.values()), name=key.replace("_", " ")
    )
    out = result.to_dict()
    if key == "preemptive_category":
        out["cohort"] = "CR patients with early regeneration"
    elif key == "early_regeneration":
        out["immortal_time_note"] = (
            "naive split: regeneration is only known once it happens (immortal-time bias); see "
            "the landmark analysis and the time-varying Cox model"
        )
    return out


def _endpoint_summary(
    endpoint: pd.DataFrame, risk_days: Sequence[float], conf_level: float
) -> dict[str, Any]:
    t, e = endpoint["time"].to_numpy(float), endpoint["event"].to_numpy(int)
    out: dict[str, Any] = {"n": len(t), "events": int(e.sum())}
    if not len(t):
        out.update(median_brookmeyer_crowley=None, median_symmetric=None, risk_table=None)
        return out
    km = kaplan_meier(t, e, conf_level=conf_level)
    out["median_brookmeyer_crowley"] = median_brookmeyer_crowley(km).to_dict()
    out["median_symmetric"] = median_collett_symmetric(km).to_dict()
    out["risk_table"] = risk_table(t, e, risk_days).to_dict()
    return out


def _cumulative_incidence(
    endpoint: pd.DataFrame, days: Sequence[float], conf_level: float
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": len(endpoint),
        "method": "Aalen-Johansen, tied times kept (no jitter)",
    }
    if not len(endpoint):
        return {**out, **{cause: [] for cause in CAUSES.values()}}
    table = aalen_johansen(endpoint["time"], endpoint["cir_event"], conf_level=conf_level)
    out["events"] = {
        "relapse": int(table.n_relapse.sum()),
        "death_without_relapse": int(table.n_death.sum()),
    }
    for cause, name in CAUSES.items():
        out[name] = [table.at(day, cause).to_dict() for day in days]
    out["variance"] = "infinitesimal jackknife; log-transformed CI (R survfit defaults)"
    return out


def headline_report(
    df: pd.DataFrame,
    *,
    rfs_origin: RfsOrigin = "infusion",
    censor_at_hsct: bool = False,
    landmark_day: float = 45,
    cir_days: Sequence[float] = DEFAULT_CIR_DAYS,
    risk_days: Sequence[float] = DEFAULT_RISK_DAYS,
    conf_level: float = 0.95,
) -> dict[str, Any]:
    """All headline figures for a validated analysis table (``dataset_schema`` output).

    ``rfs_origin`` and ``censor_at_hsct`` change RFS, the log-rank comparisons and the
    cumulative incidence. The landmark analysis and the time-varying Cox model always use the
    infusion time scale, because regeneration (day ≤ 45) is defined on it; they do honour
    ``censor_at_hsct``.
    """
    rfs = rfs_endpoint(df, origin=rfs_origin, censor_at_hsct=censor_at_hsct)
    rfs_infusion = (
        rfs
        if rfs_origin == "infusion"
        else rfs_endpoint(df, origin="infusion", censor_at_hsct=censor_at_hsct)
    )
    os_cr = os_endpoint(df, cr_only=True)
    n_cr = len(complete_remission_cohort(df))

    landmark = landmark_analysis(
        rfs_infusion["time"],
        rfs_infusion["event"],
        rfs_infusion["early_regen"],
        landmark_day=landmark_day,
        conf_level=conf_level,
    )
    split = split_at_early_regeneration(rfs_infusion)
    known = rfs_infusion.dropna(subset=["early_regen"])
    # CLINICAL.md §5: the CR rate is over patients with a response assessment; those not yet
    # assessed (best response NE: not assessed or not evaluable) are counted and shown apart,
    # never as failures.
    n_not_assessed = int((df["best_response"] == "NE").sum())
    n_assessed = len(df) - n_not_assessed
    cp = proportion_ci(n_cr, n_assessed, conf_level=conf_level)
    wilson = proportion_ci(n_cr, n_assessed, method="wilson", conf_level=conf_level)

    return {
        "options": {
            "rfs_origin": rfs_origin,
            "censor_at_hsct": censor_at_hsct,
            "landmark_day": json_number(landmark_day),
            "cir_days": [json_number(d) for d in cir_days],
            "risk_days": [json_number(d) for d in risk_days],
            "conf_level": conf_level,
        },
        "cohort": {
            "n_infused": len(df),
            "n_complete_remission": n_cr,
            "n_synthetic": int((df["synthetic"] == 1).sum()),
        },
        "cr_rate": {
            **cp.to_dict(),
            "wilson": wilson.to_dict(),
            "n_infused": len(df),
            "n_not_assessed": n_not_assessed,
        },
        "rfs": {
            "cohort": "CR patients",
            "origin": "first CR assessment" if rfs_origin == "cr" else "first infusion",
            **_endpoint_summary(rfs, risk_days, conf_level),
        },
        "os": {
            "cohort": "CR patients",
            "origin": "first infusion",
            **_endpoint_summary(os_cr, risk_days, conf_level),
        },
        "logrank": {key: _comparison(rfs, key) for key in COMPARISONS},
        "landmark": landmark.to_dict(),
        "cox": {
            "time_scale": "days from first infusion",
            "time_varying": cox_time_varying(split, conf_level=conf_level).to_dict(),
            "time_fixed": cox_time_fixed(
                known["time"], known["event"], known["early_regen"], conf_level=conf_level
            ).to_dict(),
            "adjusted": adjusted_early_regeneration(
                df, censor_at_hsct=censor_at_hsct, conf_level=conf_level
            ),
        },
        "cumulative_incidence": _cumulative_incidence(rfs, cir_days, conf_level),
    }
