"""A deterministic synthetic analysis dataset for the statistics tests.

Shaped like the study (mostly CR, early regenerators relapsing more, anti-leukemic pre-emption
doing better), with the awkward cases written in on purpose: tied days (relapses are found at
weekly visits), censoring, HSCT, relapse or censoring exactly on day 45, regeneration on day 45
and on the relapse day. Generated with numpy's default_rng(seed), so R and Python read the
same rows.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.dataset_schema import COLUMN_NAMES


def _blank(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:g}"


def synthetic_rows(n: int = 150, seed: int = 20240611) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    responses = ["CR", "CRi", "PR", "NR", "PD", "NE"]
    for i in range(n):
        response = rng.choice(responses, p=[0.68, 0.12, 0.07, 0.06, 0.04, 0.03])
        cr = response in ("CR", "CRi")
        infused = date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 1500)))
        censor = float(rng.integers(60, 1300))
        row: dict[str, str] = {
            "study_id": f"SYN-{i + 1:03d}",
            "center": str(rng.choice(["AH1", "AH2", "SH1"])),
            "product": "CD19-CAR",
            "synthetic": "1",
            "first_infusion_date": infused.isoformat(),
            "age_at_infusion": "" if rng.random() < 0.05 else f"{rng.uniform(3, 70):.1f}",
            "sex": str(rng.choice(["M", "F", ""], p=[0.5, 0.45, 0.05])),
            "best_response": str(response),
            "cr": "1" if cr else "0",
        }
        blank = dict.fromkeys(COLUMN_NAMES, "")
        if not cr:
            death = float(rng.integers(30, 400))
            died = death <= censor
            os_days = death if died else censor
            rows.append(
                blank
                | row
                | {
                    "os_days": _blank(os_days),
                    "os_event": "1" if died else "0",
                    "death_day": _blank(death if died else None),
                    "last_followup_day": _blank(os_days),
                    "preemptive_category": "none",
                }
            )
            continue
        cr_day = float(rng.choice([21, 28, 28, 28, 35]))
        aplasia = rng.random() < 0.92
        regen, early = None, None
        if aplasia:
            kind = rng.choice(["early", "late", "none"], p=[0.35, 0.35, 0.30])
            regen = {"early": rng.integers(7, 46), "late": rng.integers(46, 400), "none": None}[
                str(kind)
            ]
            regen = None if regen is None else float(regen)
            early = regen is not None and regen <= 45
        category = "none"
        if early:
            choices = ["anti_leukemic", "immunomodulatory", "none"]
            category = str(rng.choice(choices, p=[0.5, 0.35, 0.15]))
        scale = 700.0
        if early:
            scale = {"anti_leukemic": 400.0, "immunomodulatory": 120.0, "none": 200.0}[category]
        # relapses are found at weekly visits: ties on purpose
        relapse = cr_day + 7 * np.ceil(rng.exponential(scale) / 7)
        death_free = float(np.round(cr_day + rng.exponential(2500)))
        rfs = min(relapse, death_free, censor)
        relapsed = rfs == relapse and relapse <= censor
        died_first = not relapsed and rfs == death_free and death_free <= censor
        death = death_free if died_first else None
        if relapsed:
            after = float(relapse + np.round(rng.exponential(350)))
            death = after if after <= censor else None
        os_days = death if death is not None else censor
        hsct = None
        if rng.random() < 0.15:
            hsct = float(rng.integers(60, 220))
            hsct = hsct if hsct < os_days else None
        mrd = rng.choice(["1", "0", ""], p=[0.3, 0.6, 0.1])
        rows.append(
            blank
            | row
            | {
                "cr_day": _blank(cr_day),
                "rfs_days": _blank(rfs),
                "rfs_event": "1" if relapsed or died_first else "0",
                "rfs_from_cr_days": _blank(rfs - cr_day),
                "os_days": _blank(os_days),
                "os_event": "1" if death is not None else "0",
                "relapse_day": _blank(relapse if relapsed else None),
                "death_day": _blank(death),
                "hsct_day": _blank(hsct),
                "last_followup_day": _blank(os_days),
                "cir_event": "1" if relapsed else "2" if died_first else "0",
                "regen_day": _blank(regen),
                "early_regen": "" if not aplasia else "1" if early else "0",
                "late_regen": "" if not aplasia else "1" if (regen or 0) > 45 else "0",
                "mrd_positive": str(mrd),
                "car_loss": str(rng.choice(["1", "0", ""], p=[0.25, 0.65, 0.10])),
                "preemptive_category": category,
                "preemptive_day": _blank(regen + 3 if category != "none" else None),
            }
        )
    _edge_cases(rows)
    return rows


def _edge_cases(rows: list[dict[str, str]]) -> None:
    """Overwrite a few CR rows with the cases the landmark and the split must get right."""
    crs = [r for r in rows if r["cr"] == "1"]
    cases = [
        # relapse on day 45, after early regeneration on day 30: excluded from the landmark
        {"rfs_days": "45", "rfs_event": "1", "cir_event": "1", "regen_day": "30"},
        # censored on day 45: excluded (no follow-up after the landmark)
        {"rfs_days": "45", "rfs_event": "0", "cir_event": "0", "regen_day": ""},
        # regeneration on day 45 exactly: early; relapse at 100
        {"rfs_days": "100", "rfs_event": "1", "cir_event": "1", "regen_day": "45"},
        # regeneration on the relapse day: no split, covariate 0 at the event
        {"rfs_days": "40", "rfs_event": "1", "cir_event": "1", "regen_day": "40"},
        # death without relapse on day 46, just inside the landmark cohort
        {"rfs_days": "46", "rfs_event": "1", "cir_event": "2", "regen_day": "20"},
    ]
    for row, case in zip(crs[:5], cases, strict=True):
        day = float(case["rfs_days"])
        regen = case["regen_day"]
        row.update(case)
        row["rfs_from_cr_days"] = _blank(day - float(row["cr_day"]))
        row["early_regen"] = "1" if regen and float(regen) <= 45 else "0"
        row["late_regen"] = "0"
        row["relapse_day"] = case["rfs_days"] if case["cir_event"] == "1" else ""
        row["hsct_day"] = ""
        if case["cir_event"] == "2":
            row.update(death_day="46", os_days="46", os_event="1", last_followup_day="46")
        elif float(row["os_days"]) < day:
            row.update(os_days=case["rfs_days"], last_followup_day=case["rfs_days"])
            row.update(os_event="0", death_day="")
        if row["early_regen"] != "1" and row["preemptive_category"] != "none":
            row.update(preemptive_category="none", preemptive_day="")


def synthetic_frame(n: int = 150, seed: int = 20240611) -> pd.DataFrame:
    return pd.DataFrame(synthetic_rows(n, seed), columns=list(COLUMN_NAMES))


def write_synthetic_csv(path: Path, n: int = 150, seed: int = 20240611) -> Path:
    synthetic_frame(n, seed).to_csv(path, index=False)
    return path
