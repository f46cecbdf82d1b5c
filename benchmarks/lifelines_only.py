"""The dashboard's headline analyses with lifelines alone, on an exported analysis CSV.

    .venv/bin/python benchmarks/lifelines_only.py carttrack-analysis.csv

No CARTtrack code and no database: pandas reads the file, scipy gives the exact CR-rate interval
and lifelines everything else, with the cohort and endpoint choices of CLINICAL.md section 5
(the same ones ``scripts/reproduce_headline.R`` spells out for R):

* CR rate over all infused patients (Clopper-Pearson); RFS and OS among CR/CRi patients;
* Kaplan-Meier medians (lifelines' ``median_survival_time_``, first time S(t) <= 0.5, with its
  confidence interval from the pointwise band);
* log-rank: early regeneration; pre-emptive category among early regenerators; MRD; CAR loss;
* landmark at day 45 (relapse-free and followed beyond it, known early_regen, time from day 45);
* Cox: early regeneration time-varying (CoxTimeVaryingFitter, follow-up split at regen_day) and
  fixed at baseline (CoxPHFitter); both Efron ties;
* cumulative incidence of relapse with death as the competing risk (AalenJohansenFitter; lifelines
  jitters tied event times, so its estimate differs slightly from R's on tied data).

Prints ``key,value`` lines (keys as in reproduce_headline.R where the figure is the same) and one
``seconds.<analysis>`` line per analysis.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter, CoxPHFitter, CoxTimeVaryingFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import median_survival_times
from scipy.stats import binomtest

LANDMARK_DAY = 45.0
CIR_DAYS = (180.0, 365.0)

_timings: dict[str, float] = {}


def out(key: str, value: float | int | None) -> None:
    text = (
        "NA" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.15g}"
    )
    print(f"{key},{text}")


class timed:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc) -> None:
        _timings[self.name] = time.perf_counter() - self.started


def km_median(prefix: str, duration: pd.Series, event: pd.Series) -> None:
    kmf = KaplanMeierFitter().fit(duration, event)
    median = kmf.median_survival_time_
    ci = median_survival_times(kmf.confidence_interval_)
    out(f"{prefix}.n", len(duration))
    out(f"{prefix}.events", int(event.sum()))
    out(f"{prefix}.median_brookmeyer_crowley.median", None if np.isinf(median) else median)
    lower, upper = (float(v) for v in ci.iloc[0])
    out(f"{prefix}.median_lifelines_ci.lower", None if np.isinf(lower) else lower)
    out(f"{prefix}.median_lifelines_ci.upper", None if np.isinf(upper) else upper)


def logrank(key: str, duration: pd.Series, event: pd.Series, group: pd.Series) -> None:
    keep = group.notna()
    duration, event, group = duration[keep], event[keep], group[keep]
    if group.nunique() < 2:
        out(f"logrank.{key}.chi2", None)
        return
    if group.nunique() == 2:
        a, b = sorted(group.unique())
        result = logrank_test(
            duration[group == a], duration[group == b], event[group == a], event[group == b]
        )
    else:
        result = multivariate_logrank_test(duration, group, event)
    out(f"logrank.{key}.chi2", float(result.test_statistic))
    out(f"logrank.{key}.p_value", float(result.p_value))


def main(path: str) -> None:
    df = pd.read_csv(path, dtype={"study_id": str, "sex": str})

    with timed("cr_rate"):
        n_cr = int((df["cr"] == 1).sum())
        ci = binomtest(n_cr, len(df)).proportion_ci(method="exact")
        out("cr_rate.proportion", n_cr / len(df))
        out("cr_rate.lower", ci.low)
        out("cr_rate.upper", ci.high)

    d = df.loc[df["cr"] == 1].reset_index(drop=True)
    rfs_time, rfs_event = d["rfs_days"].astype(float), d["rfs_event"].astype(int)

    with timed("kaplan_meier"):
        km_median("rfs", rfs_time, rfs_event)
        km_median("os", d["os_days"].astype(float), d["os_event"].astype(int))

    with timed("logrank"):
        logrank("early_regeneration", rfs_time, rfs_event, d["early_regen"])
        early = (d["early_regen"] == 1) & d["preemptive_category"].isin(
            ["anti_leukemic", "immunomodulatory"]
        )
        logrank(
            "preemptive_category",
            rfs_time[early],
            rfs_event[early],
            d.loc[early, "preemptive_category"],
        )
        logrank("mrd_positive", rfs_time, rfs_event, d["mrd_positive"])
        logrank("car_loss", rfs_time, rfs_event, d["car_loss"])

    with timed("landmark"):
        at_risk = d["early_regen"].notna() & (rfs_time > LANDMARK_DAY)
        lm = d.loc[at_risk]
        out("landmark.n_in_cohort", len(lm))
        logrank(
            "landmark",
            lm["rfs_days"].astype(float) - LANDMARK_DAY,
            lm["rfs_event"].astype(int),
            lm["early_regen"],
        )

    known = d.loc[d["early_regen"].notna() & (rfs_time > 0)].reset_index(drop=True)
    with timed("cox_time_varying"):
        rows = []
        for p in known.itertuples(index=False):
            regen = p.regen_day
            if p.early_regen == 1 and not np.isnan(regen) and 0 < regen < p.rfs_days:
                rows.append((p.study_id, 0.0, regen, 0, 0))
                rows.append((p.study_id, regen, p.rfs_days, p.rfs_event, 1))
            else:
                exposed = int(p.early_regen == 1 and not np.isnan(regen) and regen <= 0)
                rows.append((p.study_id, 0.0, p.rfs_days, p.rfs_event, exposed))
        long = pd.DataFrame(rows, columns=["id", "start", "stop", "event", "early_regen"])
        ctv = CoxTimeVaryingFitter().fit(
            long, id_col="id", event_col="event", start_col="start", stop_col="stop"
        )
        out("cox.time_varying.n_intervals", len(long))
        out("cox.time_varying.hazard_ratio", float(np.exp(ctv.params_["early_regen"])))
        out("cox.time_varying.p_value", float(ctv.summary.loc["early_regen", "p"]))

    with timed("cox_time_fixed"):
        fixed = known[["rfs_days", "rfs_event", "early_regen"]].astype(float)
        cph = CoxPHFitter().fit(fixed, duration_col="rfs_days", event_col="rfs_event")
        out("cox.time_fixed.hazard_ratio", float(np.exp(cph.params_["early_regen"])))
        out("cox.time_fixed.p_value", float(cph.summary.loc["early_regen", "p"]))

    with timed("aalen_johansen"):
        for cause, name in ((1, "relapse"), (2, "death_without_relapse")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the "tied event times were jittered" note
                ajf = AalenJohansenFitter(calculate_variance=True, seed=2024).fit(
                    rfs_time, d["cir_event"].astype(int), event_of_interest=cause
                )
            cif = ajf.cumulative_density_.iloc[:, 0]
            for i, day in enumerate(CIR_DAYS):
                estimate = float(cif.loc[:day].iloc[-1])
                out(f"cumulative_incidence.{name}.{i}.estimate", estimate)

    for name, seconds in _timings.items():
        out(f"seconds.{name}", seconds)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lifelines_only.py ANALYSIS.csv")
    main(sys.argv[1])
