"""Is the alert worth it here? Each rule's record, from the alerts and the analysis dataset.

Pure functions on two tables (``analytics.course_tables.alerts_frame`` and the analysis
dataset), so the page, ``survival_report --alerts`` and R read the same rows.

* **What became of the alerts**, per rule, parameter version and center: raised, withdrawn (by
  kind of reason), acknowledged, closed (by outcome), still open, and the median time from
  raising to acknowledgement. An alert that was updated to a newer parameter version counts
  under the version it carries now.
* **Early regeneration against relapse**: among patients in remission at the landmark (CR/CRi,
  alive and relapse-free after the landmark day, as in the landmark analysis), "alerted" means a
  non-withdrawn early-regeneration alert on the first infusion with its finding day on or before
  the landmark. The outcome is a relapse within 180 (365) days of the infusion; a patient whose
  follow-up ended relapse-free and alive before that horizon is not evaluable and is left out; a
  death without relapse before it counts as "no relapse". Sensitivity, specificity, PPV and NPV
  carry Wilson 95 % CIs (R's ``prop.test(correct = FALSE)``). Lead time is the days from the
  alert's finding to the relapse, among alerted patients who relapsed (median and quartiles, R's
  default type-7 quantiles).

Pooled (registry-wide) results suppress small cells (``analytics.disclosure``): a count of 1 to
4 becomes None, together with the other non-zero cells of its group (the four cells of a 2×2
table, the statuses, the outcomes, the withdrawal reasons) so that it cannot be recovered from
the total, and every proportion or lead time that rests on a suppressed cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext_noop

from analytics.course_tables import WITHDRAWAL_REASONS
from analytics.disclosure import is_small, small_cell_minimum, suppress_group, suppress_small
from analytics.proportions import proportion_ci
from analytics.survival import json_number
from monitoring.models import OUTCOME_CHOICES

EARLY_REGENERATION = "early_regeneration"
HORIZONS = (180, 365)
OUTCOMES = tuple(code for code, _ in OUTCOME_CHOICES)


def _alert_summary(group: pd.DataFrame) -> dict[str, Any]:
    hours = group["hours_to_acknowledgement"].dropna().to_numpy(float)
    withdrawn = group[group["status"] == "withdrawn"]
    closed = group[group["status"] == "closed"]
    return {
        "raised": len(group),
        "open": int((group["status"] == "open").sum()),
        "acknowledged": int(group["hours_to_acknowledgement"].notna().sum()),
        "withdrawn": len(withdrawn),
        "withdrawn_by_reason": {
            kind: int((withdrawn["withdrawal_reason"] == kind).sum()) for kind in WITHDRAWAL_REASONS
        },
        "closed": len(closed),
        "closed_by_outcome": {o: int((closed["outcome"] == o).sum()) for o in OUTCOMES},
        "median_hours_to_acknowledgement": json_number(np.median(hours)) if len(hours) else None,
    }


def alert_outcomes(alerts: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (rule, parameter version, center): what became of the alerts, sorted by those keys."""
    rows = []
    for (rule, version, center), group in alerts.groupby(
        ["rule", "rule_version", "center"], sort=True
    ):
        rows.append(
            {"rule": rule, "rule_version": version, "center": center} | _alert_summary(group)
        )
    return rows


def pooled_alert_outcomes(
    alerts: pd.DataFrame, *, minimum: int | None = None
) -> list[dict[str, Any]]:
    """Per rule across every center and version, with small cells suppressed."""
    rows = []
    for rule, group in alerts.groupby("rule", sort=True):
        summary = _alert_summary(group)
        summary["raised"] = suppress_small(summary["raised"], minimum)
        statuses = suppress_group(
            {k: summary[k] for k in ("open", "acknowledged", "withdrawn", "closed")}, minimum
        )
        summary |= statuses
        for key in ("withdrawn_by_reason", "closed_by_outcome"):
            summary[key] = suppress_group(summary[key], minimum)
            if any(v is None for v in statuses.values()):
                # The breakdown would give the hidden total back: hide it with the statuses.
                summary[key] = {k: (0 if v == 0 else None) for k, v in summary[key].items()}
        if is_small(int(group["hours_to_acknowledgement"].notna().sum()), minimum):
            summary["median_hours_to_acknowledgement"] = None
        rows.append({"rule": rule} | summary)
    return rows


def _quartiles(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"n": 0, "median": None, "q1": None, "q3": None}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": len(values), "median": float(median), "q1": float(q1), "q3": float(q3)}


def early_regeneration_accuracy(
    frame: pd.DataFrame,
    alerts: pd.DataFrame,
    *,
    landmark_day: int = 45,
    horizons: tuple[int, ...] = HORIZONS,
    pooled: bool = False,
    minimum: int | None = None,
) -> dict[str, Any]:
    """Early-regeneration alerts against relapse within each horizon, for one set of patients."""
    cohort = frame[(frame["cr"] == 1) & (frame["rfs_days"] > landmark_day)]
    early = alerts[
        (alerts["rule"] == EARLY_REGENERATION)
        & (alerts["infusion_number"] == 1)
        & (alerts["status"] != "withdrawn")
        & (alerts["day"] <= landmark_day)
    ]
    alert_day = early.groupby("study_id")["day"].min()
    alerted = cohort["study_id"].isin(alert_day.index).to_numpy()
    relapse = cohort["relapse_day"].to_numpy(float)
    death = cohort["death_day"].to_numpy(float)
    followed = cohort["last_followup_day"].to_numpy(float)
    out: dict[str, Any] = {
        "landmark_day": landmark_day,
        "n_in_remission_at_landmark": len(cohort),
        "n_alerted": int(alerted.sum()),
        "horizons": [],
    }
    for horizon in horizons:
        relapsed = ~np.isnan(relapse) & (relapse <= horizon)
        died = ~relapsed & ~np.isnan(death) & (death <= horizon)
        evaluable = relapsed | died | (followed >= horizon)
        a, r = alerted[evaluable], relapsed[evaluable]
        cells = {
            "alerted_relapsed": int((a & r).sum()),
            "alerted_no_relapse": int((a & ~r).sum()),
            "not_alerted_relapsed": int((~a & r).sum()),
            "not_alerted_no_relapse": int((~a & ~r).sum()),
        }
        tp, fp = cells["alerted_relapsed"], cells["alerted_no_relapse"]
        fn, tn = cells["not_alerted_relapsed"], cells["not_alerted_no_relapse"]

        shown = suppress_group(cells, minimum) if pooled else cells
        hidden = any(v is None for v in shown.values())

        def prop(successes: int, n: int, hidden: bool = hidden) -> dict | None:
            # A proportion on a suppressed cell would give it away: suppressed with it.
            return None if hidden else proportion_ci(successes, n, method="wilson").to_dict()

        entry = {
            "horizon_days": horizon,
            "n_evaluable": int(evaluable.sum()),
            "n_not_evaluable": int((~evaluable).sum()),
            "cells": shown,
            "sensitivity": prop(tp, tp + fn),
            "specificity": prop(tn, tn + fp),
            "ppv": prop(tp, tp + fp),
            "npv": prop(tn, tn + fn),
        }
        if pooled:
            entry |= suppress_group(
                {k: entry[k] for k in ("n_evaluable", "n_not_evaluable")}, minimum
            )
        out["horizons"].append(entry)
    ids = cohort["study_id"].to_numpy()
    lead = np.array(
        [
            relapse[i] - alert_day[ids[i]]
            for i in np.flatnonzero(alerted & ~np.isnan(relapse))
            if relapse[i] >= alert_day[ids[i]]
        ],
        dtype=float,
    )
    out["lead_time_days"] = _quartiles(lead)
    if pooled:
        out["n_in_remission_at_landmark"] = suppress_small(len(cohort), minimum)
        alerted_or_not = suppress_group(
            {"alerted": out["n_alerted"], "not": len(cohort) - out["n_alerted"]}, minimum
        )
        out["n_alerted"] = alerted_or_not["alerted"]
        if is_small(len(lead), minimum):
            out["lead_time_days"] = {"n": None, "median": None, "q1": None, "q3": None}
    return out


def rule_performance_report(
    frame: pd.DataFrame,
    alerts: pd.DataFrame,
    *,
    landmark_day: int = 45,
    horizons: tuple[int, ...] = HORIZONS,
    minimum: int | None = None,
) -> dict[str, Any]:
    """Per center (as recorded) and pooled (small cells suppressed)."""
    centers = sorted(set(frame["center"]) | set(alerts["center"]))
    by_center = {}
    for center in centers:
        by_center[center] = early_regeneration_accuracy(
            frame[frame["center"] == center],
            alerts[alerts["center"] == center],
            landmark_day=landmark_day,
            horizons=horizons,
        )
    return {
        "alerts": alert_outcomes(alerts),
        "early_regeneration_by_center": by_center,
        "pooled": {
            "small_cell_minimum": small_cell_minimum(minimum),
            "alerts": pooled_alert_outcomes(alerts, minimum=minimum),
            "early_regeneration": early_regeneration_accuracy(
                frame,
                alerts,
                landmark_day=landmark_day,
                horizons=horizons,
                pooled=True,
                minimum=minimum,
            ),
        },
        "definitions": {
            # Messages, stored in English with the cached review and shown translated.
            "cohort": gettext_noop("CR/CRi patients alive and relapse-free after the landmark day"),
            "alerted": gettext_noop(
                "a non-withdrawn early-regeneration alert on the first infusion, finding day "
                "on or before the landmark"
            ),
            "outcome": gettext_noop(
                "relapse within the horizon (days from the first infusion); alive and "
                "relapse-free follow-up shorter than the horizon is not evaluable; death "
                "without relapse counts as no relapse"
            ),
            "intervals": gettext_noop("Wilson score 95 % CI (R prop.test, correct = FALSE)"),
            "lead_time": gettext_noop(
                "days from the alert's finding to relapse; median and quartiles (type 7)"
            ),
        },
    }
