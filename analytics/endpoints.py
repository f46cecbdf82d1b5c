"""Cohorts and endpoints derived from the validated analysis table (CLINICAL.md section 5).

The functions here decide *who* is analysed and *which* (time, event) pair each patient
contributes; the estimators in ``survival``, ``comparisons`` and ``competing`` then work on plain
arrays. Keeping these choices in one place means the dashboard, the report and the R script
(``scripts/reproduce_headline.R``, which mirrors them line for line) analyse the same rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

RfsOrigin = Literal["infusion", "cr"]
RFS_ORIGINS: tuple[str, ...] = ("infusion", "cr")

#: Columns carried along with every endpoint so that comparisons can group on them.
COVARIATES = (
    "early_regen",
    "regen_day",
    "preemptive_category",
    "mrd_positive",
    "car_loss",
    "cr_day",
)


def complete_remission_cohort(df: pd.DataFrame) -> pd.DataFrame:
    """CR/CRi patients (``cr == 1``): the cohort for RFS, OS and cumulative incidence."""
    return df.loc[df["cr"] == 1].reset_index(drop=True)


def rfs_endpoint(
    df: pd.DataFrame, *, origin: RfsOrigin = "infusion", censor_at_hsct: bool = False
) -> pd.DataFrame:
    """Relapse-free survival for CR patients: one row per patient.

    Columns: ``study_id, time, event, cir_event`` plus ``COVARIATES``. ``event`` is 1 for relapse
    or death from any cause; ``cir_event`` keeps the competing-risk coding (1 relapse, 2 death
    without relapse, 0 censored) for the same time.

    ``origin="cr"`` measures time from the first CR/CRi assessment (``rfs_from_cr_days``);
    every CR row must then have it, otherwise a ``ValueError`` names the patients.

    ``censor_at_hsct=True`` censors at allogeneic HSCT when HSCT came strictly before the RFS
    time (relapse, death or last follow-up): transplanted patients are then no longer
    counted as "relapse-free thanks to CAR-T". A relapse on the day of HSCT is kept as an event.
    """
    if origin not in RFS_ORIGINS:
        raise ValueError(f"rfs origin must be one of {', '.join(RFS_ORIGINS)}, not {origin!r}")
    cohort = complete_remission_cohort(df)
    time = cohort["rfs_days"].to_numpy(dtype=float)
    event = cohort["rfs_event"].to_numpy(dtype=float).astype(int)
    cir_event = cohort["cir_event"].to_numpy(dtype=float).astype(int)

    if origin == "cr":
        from_cr = cohort["rfs_from_cr_days"].to_numpy(dtype=float)
        missing = cohort.loc[np.isnan(from_cr), "study_id"].tolist()
        if missing:
            raise ValueError(
                "RFS from CR needs rfs_from_cr_days for every CR patient; blank for: "
                + ", ".join(missing)
            )
        origin_day = time - from_cr
    else:
        origin_day = np.zeros_like(time)

    if censor_at_hsct:
        hsct = cohort["hsct_day"].to_numpy(dtype=float)
        before = ~np.isnan(hsct) & (hsct < time)
        time = np.where(before, hsct, time)
        event = np.where(before, 0, event)
        cir_event = np.where(before, 0, cir_event)

    # An HSCT on or before the CR day (origin "cr") leaves no time at risk: censored at 0.
    out = pd.DataFrame(
        {
            "study_id": cohort["study_id"],
            "time": np.maximum(time - origin_day, 0.0),
            "event": event,
            "cir_event": cir_event,
        }
    )
    for name in COVARIATES:
        out[name] = cohort[name].to_numpy()
    return out


def os_endpoint(df: pd.DataFrame, *, cr_only: bool = True) -> pd.DataFrame:
    """Overall survival from the first infusion: ``study_id, time, event`` (+ ``COVARIATES``).

    CLINICAL.md analyses OS among CR patients (``cr_only=True``); all infused patients are
    available with ``cr_only=False``.
    """
    cohort = complete_remission_cohort(df) if cr_only else df.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "study_id": cohort["study_id"],
            "time": cohort["os_days"].to_numpy(dtype=float),
            "event": cohort["os_event"].to_numpy(dtype=float).astype(int),
        }
    )
    for name in COVARIATES:
        out[name] = cohort[name].to_numpy()
    return out
