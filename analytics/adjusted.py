"""Adjusted (multivariable) Cox models of relapse-free survival on the analysis dataset.

Early regeneration enters as a time-varying covariate (``cox.split_at_early_regeneration``:
the patient is unexposed until the regeneration day), the other covariates as fixed at
infusion. ``mrd_positive`` and ``car_loss`` are flags of events that also happen after the
infusion with no day in the dataset, so their hazard ratios carry immortal-time bias; they are
offered as adjustment variables and say so (``caveats``). ``product`` and ``center`` are
categorical: indicators against the first level in alphabetical order (R's
``factor`` default), or ``center`` as strata (a baseline hazard per center, what a pooled
registry should use). Rows with a blank covariate are left out (complete cases) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext_noop

from analytics.cox import split_at_early_regeneration
from analytics.coxph import CoxFit, cox_fit, cox_zph
from analytics.endpoints import rfs_endpoint

#: covariate -> (label, kind); kind is "time-varying", "flag", "number" or "factor".
COVARIATES: dict[str, tuple[str, str]] = {
    "early_regen": (gettext_noop("Early B-cell regeneration (time-varying)"), "time-varying"),
    "mrd_positive": (gettext_noop("MRD positive"), "flag"),
    "car_loss": (gettext_noop("Loss of CAR copies"), "flag"),
    "age_at_infusion": (gettext_noop("Age at infusion (per year)"), "number"),
    "product": (gettext_noop("CAR-T product"), "factor"),
    "center": (gettext_noop("Center"), "factor"),
}
STRATA = ("center", "product")
DEFAULT_ADJUSTMENT = ("early_regen", "mrd_positive", "car_loss", "age_at_infusion")
POST_INFUSION_FLAG_CAVEAT = (
    "MRD positivity and CAR loss are known only after the infusion and the dataset has no day "
    "for them: their hazard ratios are biased by immortal time, they adjust but do not estimate."
)


def check_arguments(covariates: Sequence[str], strata: str | None) -> None:
    """A ``ValueError`` saying what to change when the model asked for is not offered."""
    unknown = [c for c in covariates if c not in COVARIATES]
    if unknown:
        raise ValueError(
            "unknown covariate "
            + ", ".join(map(repr, unknown))
            + "; choose from "
            + ", ".join(COVARIATES)
        )
    if not covariates:
        raise ValueError("choose at least one covariate")
    if strata is not None and strata not in STRATA:
        raise ValueError(f"strata must be one of {', '.join(STRATA)}, not {strata!r}")
    if strata is not None and strata in covariates:
        raise ValueError(f"{strata} cannot be both a covariate and the strata")


def model_rows(
    frame: pd.DataFrame,
    *,
    covariates: Sequence[str],
    strata: str | None = None,
    censor_at_hsct: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Counting-process rows (start, stop, event, study_id, the covariates, strata) for the CR
    cohort's RFS from infusion, and the design: column names, their terms, left-out counts."""
    check_arguments(covariates, strata)
    rfs = rfs_endpoint(frame, censor_at_hsct=censor_at_hsct)
    extra = ["age_at_infusion", "product", "center"]
    cr = frame.loc[frame["cr"] == 1, ["study_id", *extra]].reset_index(drop=True)
    rfs = rfs.merge(cr, on="study_id", how="left")
    needed = [c for c in covariates if c != "early_regen"] + ([strata] if strata else [])
    complete = rfs[needed].notna().all(axis=1)
    if "early_regen" in covariates:
        complete &= rfs["early_regen"].notna()
    n_left_out = int((~complete).sum())
    used = rfs[complete]
    if "early_regen" in covariates:
        rows = split_at_early_regeneration(used)
    else:
        rows = pd.DataFrame(
            {
                "study_id": used["study_id"],
                "start": 0.0,
                "stop": used["time"],
                "event": used["event"],
            }
        )
        rows = rows[rows["stop"] > 0]
    rows = rows.merge(used[["study_id", *[c for c in needed]]], on="study_id", how="left")
    names: list[str] = []
    columns: dict[str, np.ndarray] = {}
    terms: dict[str, tuple[int, ...]] = {}
    for cov in covariates:
        kind = COVARIATES[cov][1]
        if kind == "factor":
            levels = sorted(rows[cov].astype(str).unique())
            first = len(names)
            for level in levels[1:]:
                name = f"{cov}={level}"
                names.append(name)
                columns[name] = (rows[cov].astype(str) == level).to_numpy(float)
            terms[cov] = tuple(range(first, len(names)))
            if len(levels) < 2:
                raise ValueError(f"{cov} takes one value only among these patients")
        else:
            terms[cov] = (len(names),)
            names.append(cov)
            columns[cov] = rows[cov].to_numpy(float)
    design = {
        "names": names,
        "terms": terms,
        "n_left_out": n_left_out,
        "n_patients": int(rows["study_id"].nunique()),
        "x": np.column_stack([columns[n] for n in names]) if names else np.zeros((len(rows), 0)),
    }
    return rows, design


def adjusted_cox(
    frame: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_ADJUSTMENT,
    strata: str | None = None,
    ties: str = "efron",
    robust: bool = True,
    conf_level: float = 0.95,
    censor_at_hsct: bool = False,
) -> dict[str, Any]:
    """The fitted model as JSON, with its PH test, or ``{"reason": ...}`` when not estimable.

    Bad arguments (an unknown covariate, a tie method not offered) raise ``ValueError``.
    """
    check_arguments(covariates, strata)
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be efron or breslow, not {ties!r}")
    base = {
        "endpoint": "relapse-free survival from the first infusion, CR/CRi patients",
        "covariates": list(covariates),
        "strata": strata,
        "ties": ties,
        "caveats": [POST_INFUSION_FLAG_CAVEAT]
        if {"mrd_positive", "car_loss"} & set(covariates)
        else [],
    }
    try:
        rows, design = model_rows(
            frame, covariates=covariates, strata=strata, censor_at_hsct=censor_at_hsct
        )
        base |= {
            "n_patients": design["n_patients"],
            # known whether or not the model can be estimated, so the counts of every cohort
            # add up over its parts (the disclosure rule sums them over atoms)
            "events": int(rows["event"].sum()),
            "n_left_out_blank_covariate": design["n_left_out"],
        }
        fit = fit_rows(rows, design, strata=strata, ties=ties, robust=robust, conf_level=conf_level)
    except ValueError as problem:
        return base | {"reason": str(problem)}
    labels = {n: _label(n) for n in design["names"]}
    out = base | fit.to_dict() | {"ph_test": cox_zph(fit).to_dict(), "reason": None}
    for row in out["coefficients"]:
        row["label"] = labels[row["covariate"]]
    return out


def fit_rows(
    rows: pd.DataFrame,
    design: dict[str, Any],
    *,
    strata: str | None,
    ties: str,
    robust: bool,
    conf_level: float = 0.95,
) -> CoxFit:
    return cox_fit(
        start=rows["start"].to_numpy(float),
        stop=rows["stop"].to_numpy(float),
        event=rows["event"].to_numpy(int),
        x=design["x"],
        names=design["names"],
        strata=rows[strata].astype(str).tolist() if strata else None,
        cluster=rows["study_id"].tolist() if robust else None,
        ties=ties,
        conf_level=conf_level,
        terms=design["terms"],
    )


def _label(name: str) -> str:
    cov, _, level = name.partition("=")
    label = COVARIATES[cov][0]
    return f"{label}: {level} vs reference" if level else label


def adjusted_early_regeneration(
    frame: pd.DataFrame, *, censor_at_hsct: bool = False, conf_level: float = 0.95
) -> dict[str, Any]:
    """The dashboard's adjusted hazard ratio of early regeneration (time-varying): adjusted
    for MRD positivity, CAR loss and age, stratified by center when there is more than one,
    robust SE by patient, Efron ties; the unadjusted one is ``report["cox"]["time_varying"]``."""
    adjustment = [c for c in DEFAULT_ADJUSTMENT if c != "early_regen"]
    strata = "center" if frame["center"].nunique() > 1 else None
    out = adjusted_cox(
        frame,
        covariates=["early_regen", *adjustment],
        strata=strata,
        conf_level=conf_level,
        censor_at_hsct=censor_at_hsct,
    )
    summary = {
        "model": "Cox, early regeneration time-varying, adjusted",
        "adjusted_for": [COVARIATES[c][0] for c in adjustment],
        "strata": strata,
        "ties": "efron",
        "variance": "robust (clustered by patient)",
        "n": out.get("n_patients"),
        "events": out.get("events"),
        "n_left_out_blank_covariate": out.get("n_left_out_blank_covariate"),
        "conf_level": conf_level,
        "caveat": POST_INFUSION_FLAG_CAVEAT,
        "reason": out["reason"],
    }
    if out["reason"]:
        return summary | {"hazard_ratio": None, "lower": None, "upper": None, "p_value": None}
    row = out["coefficients"][0]
    ph = {r["term"]: r["p_value"] for r in out["ph_test"]["rows"]}
    return summary | {
        "hazard_ratio": row["hazard_ratio"],
        "lower": row["lower"],
        "upper": row["upper"],
        "p_value": row["p_value"],
        "ph_test_p_value": ph.get("early_regen"),
        "ph_global_p_value": ph.get("GLOBAL"),
    }
