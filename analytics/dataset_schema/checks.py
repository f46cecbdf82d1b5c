"""The cross-field rules of an analysis-dataset row, whose violation would silently change a
result (CR and its response, RFS within OS, the competing-risk code, regeneration and its flags).

Each rule reads one typed row (blank cells as None) and returns (column, problem) or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analytics.dataset_schema.cells import is_blank
from analytics.dataset_schema.columns import CR_RESPONSES, EARLY_REGENERATION_WINDOW_DAYS

Check = Callable[[dict[str, Any]], tuple[str, str] | None]


def cr_matches_response(r: dict[str, Any]) -> tuple[str, str] | None:
    expected = 1 if r["best_response"] in CR_RESPONSES else 0
    if r["cr"] != expected:
        return "cr", f"is {r['cr']} but best_response is {r['best_response']}"
    return None


def cr_fields(r: dict[str, Any]) -> tuple[str, str] | None:
    for name in ("rfs_days", "rfs_event", "cir_event"):
        if r["cr"] == 1 and is_blank(r[name]):
            return name, "is blank but the patient is in CR (cr = 1)"
    for name in ("rfs_days", "rfs_event", "rfs_from_cr_days", "cir_event", "cr_day"):
        if r["cr"] == 0 and not is_blank(r[name]):
            return name, "must be blank when cr = 0 (RFS is defined for CR patients only)"
    return None


def rfs_within_os(r: dict[str, Any]) -> tuple[str, str] | None:
    if r["rfs_days"] is not None and r["rfs_days"] > r["os_days"]:
        return "rfs_days", f"({r['rfs_days']:g}) is longer than os_days ({r['os_days']:g})"
    return None


def cir_matches_rfs(r: dict[str, Any]) -> tuple[str, str] | None:
    if r["cr"] != 1 or r["cir_event"] is None or r["rfs_event"] is None:
        return None
    if (r["cir_event"] != 0) != (r["rfs_event"] == 1):
        return "cir_event", f"is {r['cir_event']} but rfs_event is {r['rfs_event']}"
    return None


def regeneration(r: dict[str, Any]) -> tuple[str, str] | None:
    window = EARLY_REGENERATION_WINDOW_DAYS
    day = r["regen_day"]
    if is_blank(day):
        if r["early_regen"] == 1 or r["late_regen"] == 1:
            return "regen_day", "is blank but early_regen or late_regen is 1"
        return None
    if is_blank(r["early_regen"]):
        return "early_regen", "is blank but regen_day is given"
    if r["early_regen"] != int(day <= window):
        return "early_regen", f"is {r['early_regen']} but regen_day is {day:g}"
    if not is_blank(r["late_regen"]) and r["late_regen"] != int(day > window):
        return "late_regen", f"is {r['late_regen']} but regen_day is {day:g}"
    return None


def center_regeneration(r: dict[str, Any]) -> tuple[str, str] | None:
    # The center's window differs between centers: only "a flag exactly when a day".
    if is_blank(r["center_regen_day"]) != is_blank(r["center_early_regen"]):
        if is_blank(r["center_regen_day"]):
            return "center_early_regen", "is given but center_regen_day is blank"
        return "center_early_regen", "is blank but center_regen_day is given"
    return None


ROW_CHECKS: tuple[Check, ...] = (
    cr_matches_response,
    cr_fields,
    rfs_within_os,
    cir_matches_rfs,
    regeneration,
    center_regeneration,
)
