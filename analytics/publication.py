"""Table 1 (baseline characteristics by a grouping) and Table 2 (hazard ratios) for a paper.

Pure functions on the analysis dataset. Table 1: counts and % per category, median (IQR) for
numbers, and a p-value with its test named: Fisher's exact test for a 2 × 2 table, the
chi-square test (no continuity correction, R ``chisq.test`` on a larger table) otherwise;
Wilcoxon rank-sum for two groups (exact without ties and with both groups < 50, as R's
``wilcox.test``; otherwise the normal approximation with continuity correction) and
Kruskal–Wallis for more. Table 2: univariable and multivariable Cox models of RFS (early
regeneration time-varying), the ties method, robust SE and R's ``cox.zph`` PH test named.

Small cells (``analytics.disclosure``): with ``minimum`` > 0 a count below it is shown as
"<minimum" with its % hidden, and the other counts of the same group and variable with it
(they add up to the group's total).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext, gettext_noop
from scipy import stats

from analytics.adjusted import COVARIATES, adjusted_cox, check_arguments
from analytics.disclosure import WITHHELD, is_small, small_cell_label, suppress_group

#: column -> (label, kind): "category" or "number"
TABLE_ONE_VARIABLES: dict[str, tuple[str, str]] = {
    "age_at_infusion": (gettext_noop("Age at infusion, years"), "number"),
    "sex": (gettext_noop("Sex"), "category"),
    "product": (gettext_noop("CAR-T product"), "category"),
    "center": (gettext_noop("Center"), "category"),
    "best_response": (gettext_noop("Best response"), "category"),
    "early_regen": (gettext_noop("Early B-cell regeneration (≤ day 45)"), "category"),
    "mrd_positive": (gettext_noop("MRD positive"), "category"),
    "car_loss": (gettext_noop("Loss of CAR copies"), "category"),
    "preemptive_category": (gettext_noop("Pre-emptive therapy"), "category"),
}
GROUPINGS: dict[str, str] = {
    "early_regen": gettext_noop("Early B-cell regeneration"),
    "mrd_positive": gettext_noop("MRD positive"),
    "car_loss": gettext_noop("Loss of CAR copies"),
    "product": gettext_noop("CAR-T product"),
    "center": gettext_noop("Center"),
    "cr": gettext_noop("Complete remission (CR/CRi)"),
    "sex": gettext_noop("Sex"),
}
FLAG_LABELS = {"1": gettext_noop("yes"), "0": gettext_noop("no")}


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _category_test(table: np.ndarray) -> tuple[float | None, str]:
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None, gettext_noop("not tested (one value only)")
    if table.shape == (2, 2):
        return float(stats.fisher_exact(table)[1]), gettext_noop("Fisher's exact test")
    return float(stats.chi2_contingency(table, correction=False)[1]), gettext_noop(
        "chi-square test"
    )


def _number_test(samples: list[np.ndarray]) -> tuple[float | None, str]:
    samples = [s for s in samples if len(s)]
    if len(samples) < 2:
        return None, gettext_noop("not tested (one group only)")
    pooled = np.concatenate(samples)
    if np.ptp(pooled) == 0:
        return None, gettext_noop("not tested (one value only)")
    if len(samples) == 2:
        a, b = samples
        ties = len(np.unique(pooled)) < len(pooled)
        exact = len(a) < 50 and len(b) < 50 and not ties
        result = stats.mannwhitneyu(
            a,
            b,
            alternative="two-sided",
            method="exact" if exact else "asymptotic",
            use_continuity=True,
        )
        return float(result.pvalue), gettext_noop("Wilcoxon rank-sum test")
    return float(stats.kruskal(*samples).pvalue), gettext_noop("Kruskal–Wallis test")


def table_one_counts(frame: pd.DataFrame, *, grouping: str) -> dict[str, int]:
    """Every count Table 1 shows, by its path ("size/<group>", "<column>/n/<group>",
    "<column>/<category>/<group>"), for the differencing rule (``analytics.disclosure``): the
    same counts computed on each atom (center x product x year) of the registry."""
    keys = frame[grouping].map(_text)
    cells: dict[str, int] = {}
    for lvl in keys.dropna().unique():
        member = (keys == lvl).to_numpy()
        cells[f"size/{lvl}"] = int(member.sum())
        for column, (_label, kind) in TABLE_ONE_VARIABLES.items():
            if column == grouping:
                continue
            values = frame[column]
            if kind == "number":
                numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
                cells[f"{column}/n/{lvl}"] = int((member & ~np.isnan(numbers)).sum())
                continue
            texts = values.map(_text)
            for category in texts.dropna().unique():
                both = (texts == category).to_numpy() & member
                cells[f"{column}/{category}/{lvl}"] = int(both.sum())
    return cells


def table_one(
    frame: pd.DataFrame, *, grouping: str, minimum: int = 0, withheld: set[str] | None = None
) -> dict[str, Any]:
    """Baseline characteristics of the infused patients by ``grouping``. ``withheld``: paths
    (``table_one_counts``) that the differencing rule hides from this reader, shown as
    "withheld" (with their percentage, or their median, which would give them away)."""
    if grouping not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, not {grouping!r}")
    keys = frame[grouping].map(_text)
    levels = sorted(k for k in keys.dropna().unique())
    if len(levels) < 2:
        raise ValueError(f"{GROUPINGS[grouping]} takes one value only in this cohort")
    groups = _Groups(
        levels=levels,
        members={lvl: (keys == lvl).to_numpy() for lvl in levels},
        minimum=minimum,
        withheld=withheld or set(),
    )
    group_names = [
        FLAG_LABELS.get(lvl, lvl)
        if grouping != "cr"
        else {"1": "CR/CRi", "0": gettext_noop("no CR")}[lvl]
        for lvl in levels
    ]
    rows: list[dict[str, Any]] = []
    for column, (label, kind) in TABLE_ONE_VARIABLES.items():
        if column == grouping:
            continue
        if kind == "number":
            rows.append(_number_row(frame[column], column, label, groups))
        else:
            rows += _category_rows(frame[column], column, label, groups)
    return {
        "grouping": GROUPINGS[grouping],
        "groups": [
            {
                "label": name,
                "n": WITHHELD
                if f"size/{lvl}" in groups.withheld
                else small_cell_label(groups.sizes[lvl], minimum),
            }
            for name, lvl in zip(group_names, levels, strict=True)
        ],
        "n_blank_grouping": int(keys.isna().sum()),
        "rows": rows,
        "note": gettext_noop("Percentages of the group's patients; blank values are not counted."),
    }


@dataclass(frozen=True)
class _Groups:
    """Table 1's groups: their levels in order, each one's members (a mask of the frame's
    rows), and what this reader may not see (small cells, withheld paths)."""

    levels: list[str]
    members: dict[str, np.ndarray]
    minimum: int
    withheld: set[str]

    @property
    def sizes(self) -> dict[str, int]:
        return {lvl: int(m.sum()) for lvl, m in self.members.items()}


def _number_row(values: pd.Series, column: str, label: str, groups: _Groups) -> dict[str, Any]:
    """A number's median (IQR) per group and the test of their difference."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    samples = [numbers[m & ~np.isnan(numbers)] for m in groups.members.values()]
    p, test = _number_test(samples)
    cells = []
    for lvl, s in zip(groups.levels, samples, strict=True):
        if len(s) and ({f"{column}/n/{lvl}", f"size/{lvl}"} & groups.withheld):
            cells.append(WITHHELD)
        elif not len(s) or is_small(len(s), groups.minimum):
            cells.append(f"n {small_cell_label(len(s), groups.minimum)}" if len(s) else "—")
        else:
            q1, med, q3 = np.percentile(s, [25, 50, 75])
            cells.append(f"{med:.1f} ({q1:.1f}–{q3:.1f})")
    return {
        "variable": label,
        "level": gettext_noop("median (IQR)"),
        "cells": cells,
        "p_value": p,
        "test": test,
    }


def _category_rows(
    values: pd.Series, column: str, label: str, groups: _Groups
) -> list[dict[str, Any]]:
    """A category's count (%) per group, one row per value; the test on the first row."""
    texts = values.map(_text)
    categories = sorted(texts.dropna().unique())
    if not categories:
        return []
    counts = np.array(
        [
            [int(((texts == c).to_numpy() & m).sum()) for m in groups.members.values()]
            for c in categories
        ]
    )
    p, test = _category_test(counts)
    shown_by_group = [
        suppress_group({c: int(counts[i, j]) for i, c in enumerate(categories)}, groups.minimum)
        for j in range(len(groups.levels))
    ]
    sizes = groups.sizes
    rows = []
    for i, category in enumerate(categories):
        cells = []
        for j, lvl in enumerate(groups.levels):
            shown = shown_by_group[j][category]
            if {f"{column}/{category}/{lvl}", f"size/{lvl}"} & groups.withheld:
                cells.append(WITHHELD)
            elif shown is None:
                cells.append(f"<{groups.minimum}")
            else:
                pct = 100 * shown / sizes[lvl] if sizes[lvl] else 0
                cells.append(f"{shown} ({pct:.1f} %)")
        rows.append(
            {
                "variable": label,
                "level": FLAG_LABELS.get(category, category),
                "cells": cells,
                "p_value": p if i == 0 else None,
                "test": test if i == 0 else "",
            }
        )
    return rows


def table_two(
    frame: pd.DataFrame,
    *,
    covariates: Sequence[str],
    strata: str | None = None,
    ties: str = "efron",
    minimum: int = 0,
) -> dict[str, Any]:
    """Univariable and multivariable Cox hazard ratios of RFS for ``covariates``."""
    check_arguments(covariates, strata)
    multi = adjusted_cox(frame, covariates=covariates, strata=strata, ties=ties)
    rows = []
    for cov in covariates:
        uni = adjusted_cox(frame, covariates=[cov], strata=strata, ties=ties)
        uni_rows = {r["covariate"]: r for r in uni.get("coefficients", [])}
        multi_rows = {r["covariate"]: r for r in multi.get("coefficients", [])}
        names = list(uni_rows) or [cov]
        for name in names:
            rows.append(
                {
                    "covariate": _label(name),
                    "univariable": _hr(uni_rows.get(name), uni["reason"]),
                    "multivariable": _hr(multi_rows.get(name), multi["reason"]),
                }
            )
    ph = {r["term"]: r["p_value"] for r in multi.get("ph_test", {}).get("rows", [])}
    return {
        "endpoint": multi["endpoint"],
        "rows": rows,
        "n": small_cell_label(multi["n_patients"], minimum) if "n_patients" in multi else None,
        "events": small_cell_label(multi["events"], minimum) if "events" in multi else None,
        "ties": f"{ties.capitalize()} ties",
        "variance": gettext_noop("robust SE clustered by patient"),
        "strata": strata,
        "ph_test": gettext_noop(
            "proportional hazards: Grambsch–Therneau test (R cox.zph, KM transform)"
        ),
        "ph_global_p_value": ph.get("GLOBAL"),
        "reason": multi["reason"],
        "caveats": multi["caveats"],
    }


def _label(name: str) -> str:
    cov, _, level = name.partition("=")
    base = COVARIATES[cov][0]
    return f"{base}: {level}" if level else base


def _hr(row: dict[str, Any] | None, reason: str | None) -> dict[str, Any]:
    if row is None:
        return {"text": reason or "—", "p_value": None}
    return {
        "text": f"{row['hazard_ratio']:.2f} ({row['lower']:.2f}–{row['upper']:.2f})",
        "p_value": row["p_value"],
        "hazard_ratio": row["hazard_ratio"],
        "lower": row["lower"],
        "upper": row["upper"],
    }


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def table_one_rows(table: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for CSV / XLSX."""
    header = [
        "Characteristic",
        "Level",
        *[f"{g['label']} (n = {g['n']})" for g in table["groups"]],
        "p",
        "Test",
    ]
    rows = [
        [
            r["variable"],
            r["level"],
            *r["cells"],
            format_p(r["p_value"]) if r["test"] else "",
            r["test"],
        ]
        for r in table["rows"]
    ]
    return header, rows


def table_two_rows(table: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["Covariate", "Univariable HR (95 % CI)", "p", "Multivariable HR (95 % CI)", "p"]
    rows = [
        [
            r["covariate"],
            r["univariable"]["text"],
            format_p(r["univariable"]["p_value"]),
            r["multivariable"]["text"],
            format_p(r["multivariable"]["p_value"]),
        ]
        for r in table["rows"]
    ]
    rows.append(
        [
            f"{table['ties']}; {table['variance']}; {table['ph_test']}: global p = "
            f"{format_p(table['ph_global_p_value'])}",
            "",
            "",
            "",
            "",
        ]
    )
    return header, rows


def competing_rows(competing: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Fine–Gray and Gray's test at the landmark, for CSV / XLSX."""
    header = ["Outcome", "Subdistribution HR (95 % CI), regenerated vs not", "p", "Gray's test p"]
    gray = {r["cause"]: r["p_value"] for r in competing["gray"]}
    rows = []
    for cause, (name, fit) in enumerate(competing["fine_gray"].items(), start=1):
        rows.append(
            [
                name,
                f"{fit['hazard_ratio']:.2f} ({fit['lower']:.2f}–{fit['upper']:.2f})",
                format_p(fit["p_value"]),
                format_p(gray.get(cause)),
            ]
        )
    rows.append(
        [
            f"Fine–Gray (R cmprsk::crr), landmark day {competing['landmark_day']:g}, "
            f"n = {competing['n']}; {competing['note']}",
            "",
            "",
            "",
        ]
    )
    return header, rows


# The page shows the tables in the reader's language; the CSV and XLSX files (table_one_rows,
# table_two_rows, competing_rows) keep the English labels, the same file for every reader, as
# the analysis table's columns and the API do. The labels above are messages, so a stored or
# computed table is translated label by label; numbers and test results are never touched.
def _shown(text: Any) -> Any:
    return gettext(text) if isinstance(text, str) and text else text


def table_one_shown(table: dict[str, Any]) -> dict[str, Any]:
    """Table 1 as the page shows it: labels, levels and test names translated."""
    return {
        **table,
        "grouping": _shown(table["grouping"]),
        "groups": [{**g, "label": _shown(g["label"])} for g in table["groups"]],
        "rows": [
            {
                **r,
                "variable": _shown(r["variable"]),
                "level": _shown(r["level"]),
                "test": _shown(r["test"]),
                "cells": [gettext(c) if c == WITHHELD else c for c in r["cells"]],
            }
            for r in table["rows"]
        ],
        "note": _shown(table.get("note")),
    }


def table_two_shown(table: dict[str, Any]) -> dict[str, Any]:
    """Table 2 as the page shows it: covariates and method notes translated."""
    return {
        **table,
        "rows": [{**r, "covariate": _shown(r["covariate"])} for r in table["rows"]],
        "ties": gettext("{ties} ties").replace("{ties}", table["ties"].split(" ")[0])
        if table.get("ties")
        else table.get("ties"),
        "variance": _shown(table.get("variance")),
        "ph_test": _shown(table.get("ph_test")),
    }
