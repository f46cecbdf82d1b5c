"""``python manage.py survival_report --csv FILE [--json]``: the headline survival figures of
an exported analysis dataset, as a readable table or as the JSON of ``headline_report``.

``--alerts ALERTS.csv`` adds each rule's performance (``analytics.performance``);
``--calibration`` prints the window/threshold calibration grid instead, from the B-cell course
(``--bcells BCELLS.csv``, by default FILE with ``-bcells`` before ``.csv``). The companion files
are the exports of the rule-performance page (``analytics.course_tables``).

It reads files and touches no database, so a statistician can run it on an export anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.calibration import calibration_grid
from analytics.course_tables import read_alerts_csv, read_bcell_csv
from analytics.dataset_schema import read_analysis_csv
from analytics.endpoints import RFS_ORIGINS
from analytics.performance import rule_performance_report
from analytics.report import headline_report


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _ci(d: dict[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    lo = None if d.get("lower") is None else d["lower"] * scale
    hi = None if d.get("upper") is None else d["upper"] * scale
    return f"95 % CI {_num(lo, digits)}-{_num(hi, digits)}"


def _median_line(label: str, m: dict[str, Any] | None) -> str:
    if m is None:
        return f"  {label:<30}n/a (no patients)"
    text = f"  {label:<30}{_num(m['median'])} days, {_ci(m)}  [{m['method']}]"
    return text + (f"  ({m['note']})" if m.get("note") else "")


def _logrank_lines(name: str, r: dict[str, Any]) -> Iterable[str]:
    groups = "; ".join(f"{g['label']}: {g['events']}/{g['n']} events" for g in r["groups"])
    if r["p_value"] is None:
        yield f"  {name:<30}not tested: {r['reason']}  ({groups})"
        return
    yield f"  {name:<30}chi2 {r['chi2']:.3f}, df {r['df']}, p = {_p(r['p_value'])}  ({groups})"
    for note in (r.get("caution"), r.get("immortal_time_note")):
        if note:
            yield f"  {'':<30}note: {note}"


def _cox_line(label: str, c: dict[str, Any]) -> str:
    if c["hazard_ratio"] is None:
        return f"  {label:<30}not estimable: {c['reason']}"
    return (
        f"  {label:<30}HR {c['hazard_ratio']:.3f}, {_ci(c, 3)}, Wald p = {_p(c['p_value'])}"
        f"  ({c['n_patients']} patients, {c['events']} events, {c['ties']} ties)"
    )


def format_report(report: dict[str, Any]) -> str:
    """The headline figures as a plain-text table for a terminal."""
    o, c = report["options"], report["cohort"]
    origin = "first CR assessment" if o["rfs_origin"] == "cr" else "first infusion"
    hsct = "censored at HSCT" if o["censor_at_hsct"] else "not censored at HSCT"
    cr = report["cr_rate"]
    lines = [
        f"Headline survival figures (RFS from {origin}, {hsct})",
        f"Cohort: {c['n_infused']} infused, {c['n_complete_remission']} in CR/CRi"
        + (f" ({c['n_synthetic']} synthetic)" if c["n_synthetic"] else ""),
        "",
        f"CR rate {cr['successes']}/{cr['n']} = {_num((cr['proportion'] or 0) * 100)} %, "
        f"{_ci(cr, 1, 100)} ({cr['method']}); "
        f"{cr.get('n_not_assessed', 0)} not yet assessed, counted apart",
    ]
    for key, title in (("rfs", "Relapse-free survival"), ("os", "Overall survival")):
        s = report[key]
        lines += [
            "",
            f"{title} ({s['cohort']}, from {s['origin']}): n {s['n']}, {s['events']} events",
        ]
        lines.append(_median_line("median", s["median_brookmeyer_crowley"]))
        lines.append(_median_line("median (symmetric)", s["median_symmetric"]))
        if s["risk_table"]:
            risk = s["risk_table"]
            cells = ", ".join(
                f"day {t:g}: {n}" for t, n in zip(risk["times"], risk["at_risk"], strict=True)
            )
            lines.append(f"  {'number at risk':<30}{cells}")
    lines += ["", "Log-rank tests of RFS"]
    for key, r in report["logrank"].items():
        lines += _logrank_lines(key.replace("_", " "), r)
    lm = report["landmark"]
    lines += [
        "",
        f"Landmark at day {lm['landmark_day']:g}: {lm['n_in_cohort']} of {lm['n_considered']} "
        f"CR patients at risk ({lm['n_event_by_landmark']} relapsed/died and "
        f"{lm['n_censored_by_landmark']} censored by then are excluded)",
    ]
    for g in lm["groups"]:
        lines.append(_median_line(f"{g['label']} ({g['events']}/{g['n']})", g))
    lines += _logrank_lines("log-rank", lm["logrank"])
    lines += ["", f"Cox models of RFS ({report['cox']['time_scale']})"]
    lines.append(_cox_line("time-varying", report["cox"]["time_varying"]))
    lines.append(_cox_line("fixed at baseline", report["cox"]["time_fixed"]))
    if "adjusted" in report["cox"]:  # snapshots from before it have none
        adjusted = report["cox"]["adjusted"] | {"n_patients": report["cox"]["adjusted"]["n"]}
        lines.append(_cox_line("time-varying, adjusted", adjusted))
    ci = report["cumulative_incidence"]
    lines += ["", f"Cumulative incidence, CR patients (n {ci['n']}), {ci['method']}"]
    for cause in ("relapse", "death_without_relapse"):
        for point in ci[cause]:
            label = f"{cause.replace('_', ' ')} day {point['day']:g}"
            value = _num(None if point["estimate"] is None else point["estimate"] * 100)
            lines.append(f"  {label:<30}{value} %, {_ci(point, 1, 100)}")
    return "\n".join(lines) + "\n"


def format_calibration(grid: dict[str, Any]) -> str:
    lines = [
        "Calibration of the early-regeneration window and threshold",
        f"{grid['cohort']}; {grid['grouping']}.",
        f"Caution: {grid['caveat']}",
        "",
        f"{'confirm':<8}{'> cells/uL':<11}{'window':<7}{'regen (ev)':<12}{'not (ev)':<11}"
        f"{'chi2':<9}HR (95 % CI)",
    ]
    for c in grid["cells"]:
        hr = (
            f"{c['hazard_ratio']:.2f} ({c['lower']:.2f}-{c['upper']:.2f})"
            if c["hazard_ratio"] is not None
            else f"n/a: {c['reason']}"
        )
        chi2 = _num(c["chi2"], 3)
        lines.append(
            f"{'on' if c['confirmation'] else 'off':<8}{c['threshold_cells_per_ul']:<11g}"
            f"{c['window_days']:<7}{c['n_regenerated']} ({c['events_regenerated']})".ljust(38)
            + f"{c['n_not_regenerated']} ({c['events_not_regenerated']})".ljust(11)
            + f"{chi2:<9}{hr}"
        )
    return "\n".join(lines) + "\n"


def format_rule_performance(performance: dict[str, Any]) -> str:
    lines = ["", "Alerts per rule, parameter version and center"]
    for r in performance["alerts"]:
        closed = ", ".join(f"{k} {v}" for k, v in r["closed_by_outcome"].items() if v)
        hours = r["median_hours_to_acknowledgement"]
        lines.append(
            f"  {r['rule']} {r['rule_version']} {r['center']}: raised {r['raised']}, withdrawn "
            f"{r['withdrawn']}, acknowledged {r['acknowledged']} (median "
            f"{_num(hours)} h), closed {r['closed']}" + (f" ({closed})" if closed else "")
        )
    for center, acc in performance["early_regeneration_by_center"].items():
        lines.append(
            f"Early regeneration, center {center}: {acc['n_in_remission_at_landmark']} in "
            f"remission at day {acc['landmark_day']}, {acc['n_alerted']} alerted"
        )
        for h in acc["horizons"]:
            parts = []
            for name in ("sensitivity", "specificity", "ppv", "npv"):
                p = h[name]
                value = "n/a" if not p or p["proportion"] is None else _num(p["proportion"] * 100)
                parts.append(f"{name} {value} %" + (f" ({_ci(p, 1, 100)})" if p and p["n"] else ""))
            lines.append(f"  relapse within {h['horizon_days']} d: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Print the headline survival figures of an analysis-dataset CSV (no database used)."
    requires_system_checks: list[str] = []  # reads a file only; unrelated app checks must not block

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, help="analysis dataset CSV file")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--rfs-origin", choices=RFS_ORIGINS, default="infusion")
        parser.add_argument("--censor-at-hsct", action="store_true")
        parser.add_argument("--landmark-day", type=float, default=45)
        parser.add_argument("--alerts", help="alerts CSV (rule-performance page export)")
        parser.add_argument(
            "--calibration", action="store_true", help="print the window/threshold grid"
        )
        parser.add_argument(
            "--bcells", help="B-cell course CSV for --calibration (default FILE-bcells.csv)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            df = read_analysis_csv(options["csv"])
            if options["calibration"]:
                grid = calibration_grid(df, read_bcell_csv(self._bcells_path(options)))
                if options["json"]:
                    self.stdout.write(json.dumps(grid, indent=2, allow_nan=False))
                else:
                    self.stdout.write(format_calibration(grid), ending="")
                return
            report = headline_report(
                df,
                rfs_origin=options["rfs_origin"],
                censor_at_hsct=options["censor_at_hsct"],
                landmark_day=options["landmark_day"],
            )
            if options["alerts"]:
                report["rule_performance"] = rule_performance_report(
                    df,
                    read_alerts_csv(options["alerts"]),
                    landmark_day=int(options["landmark_day"]),
                )
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, allow_nan=False))
        else:
            text = format_report(report)
            if "rule_performance" in report:
                text += format_rule_performance(report["rule_performance"])
            self.stdout.write(text, ending="")

    @staticmethod
    def _bcells_path(options: dict[str, Any]) -> str:
        if options["bcells"]:
            return options["bcells"]
        path = options["csv"]
        return (path[:-4] if path.endswith(".csv") else path) + "-bcells.csv"
