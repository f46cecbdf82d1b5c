"""Plotly figures of the dashboard, built from the same analysis table as the numbers.

Each KM figure has step curves with their 95 % confidence bands (R's log-transformed band),
censor marks, the median and p-value annotated, hover showing the number at risk, and a
number-at-risk table aligned under the time axis. Figures are stored in the snapshot as plain
plotly JSON and drawn by plotly.js served from the plotly package itself (no CDN).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from django.utils.translation import gettext_noop
from plotly.subplots import make_subplots

from analytics.comparisons import landmark_cohort_mask
from analytics.competing import aalen_johansen
from analytics.disclosure import small_cell_label
from analytics.endpoints import os_endpoint, rfs_endpoint
from analytics.figure_texts import FigureTexts
from analytics.report import COMPARISONS, group_key
from analytics.survival import km_curve

COLORS = ["#1f4e79", "#b3261e", "#2e7d32", "#b26a00"]
BANDS = [
    "rgba(31,78,121,0.15)",
    "rgba(179,38,30,0.15)",
    "rgba(46,125,50,0.15)",
    "rgba(178,106,0,0.15)",
]


# What a figure's coordinates need (the hover shows days to 0 and curves to 3 decimals; the report
# keeps full precision): days to 0.1, survival and incidence to 4 decimals.
_DIGITS = {"x": 1, "y": 4}


def _short(value: float | None, digits: int) -> float | int | None:
    if value is None or math.isnan(value):
        return None
    value = round(value, digits)
    return int(value) if value.is_integer() else value


def _compact(figure: dict[str, Any]) -> dict[str, Any]:
    """Trace coordinates as short decimal lists instead of base64 float64 (plotly's typed
    arrays), which compress several times better: a smaller figures JSON for the dashboard."""
    for trace in figure.get("data", []):
        for axis, digits in _DIGITS.items():
            values = trace.get(axis)
            if isinstance(values, dict) and "bdata" in values and "shape" not in values:
                decoded = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
                trace[axis] = [_short(float(v), digits) for v in decoded]
            elif isinstance(values, list) and any(isinstance(v, float) for v in values):
                if all(v is None or isinstance(v, float) for v in values):
                    trace[axis] = [_short(v, digits) for v in values]
    return figure


def _fmt_p(p: float | None, tx: FigureTexts) -> str:
    if p is None:
        return tx(gettext_noop("p not computed"))
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _fmt_median(m: dict | None, tx: FigureTexts) -> str:
    if not m or m.get("median") is None:
        return tx(gettext_noop("median not reached"))
    # "NR": not reached, the abbreviation survival tables use in every language.
    lo = "NR" if m.get("lower") is None else f"{m['lower']:.0f}"
    hi = "NR" if m.get("upper") is None else f"{m['upper']:.0f}"
    return tx(
        gettext_noop("median {median} d (95% CI {lower}–{upper})"),
        median=f"{m['median']:.0f}",
        lower=lo,
        upper=hi,
    )


def _band(x, lower, upper, fillcolor: str, label: str, tx: FigureTexts) -> list[go.Scatter]:
    """A step-shaped 95 % confidence band: the upper edge, then the lower edge filled up to it."""
    edge = {
        "mode": "lines",  # a band is an area: no markers on its edges
        "line": {"width": 0, "shape": "hv"},
        "hoverinfo": "skip",
        "showlegend": False,
        "legendgroup": label,
    }
    return [
        go.Scatter(x=x, y=upper, **edge),
        go.Scatter(
            x=x,
            y=lower,
            fill="tonexty",
            fillcolor=fillcolor,
            name=tx(gettext_noop("{label} 95% CI"), label=label),
            **edge,
        ),
    ]


def _median_time(step_time: np.ndarray, survival: np.ndarray) -> float | None:
    """The first time the step curve reaches 0.5 or below (None: median not reached)."""
    reached = np.nonzero(survival <= 0.5)[0]
    return float(step_time[reached[0]]) if len(reached) else None


def _readable_ticks(max_time: float) -> list[float]:
    """Evenly spaced days for the axis and the number-at-risk row (6-monthly, or yearly for
    long follow-up), so labels never collide as 0, 90 and 180 would."""
    step = 182.5 if max_time <= 1100 else 365.0
    ticks, day = [], 0.0
    while day <= max_time:
        ticks.append(round(day))
        day += step
    return ticks


def km_figure(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    title: str,
    y_title: str,
    note: str = "",
    risk_days: Sequence[float] = (),
    x_title: str = "",
    cumulative: bool = False,
    small_cell_min: int = 0,
    texts: FigureTexts | None = None,
) -> dict[str, Any]:
    """A KM figure with a number-at-risk table under it. groups: (label, time, event). Its
    texts are recorded in ``texts`` (see analytics.figure_texts) so it is served translated."""
    tx = texts or FigureTexts()
    x_title = x_title or tx(gettext_noop("Days after first infusion"))
    groups = [g for g in groups if len(g[1])]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.1
    )
    max_time = max((float(np.max(t)) for _l, t, _e in groups), default=1.0)
    risk_days = _readable_ticks(max_time)
    for index, (label, time, event) in enumerate(groups):
        curve = km_curve(time, event, label=label, risk_times=risk_days)
        color, band = COLORS[index % 4], BANDS[index % 4]
        step_t = np.asarray(curve.step_time)
        at_risk = [small_cell_label(int((time >= t).sum()), small_cell_min) for t in step_t]
        n, events = (small_cell_label(x, small_cell_min) for x in (len(time), int(np.sum(event))))
        for trace in _band(step_t, curve.step_lower, curve.step_upper, band, label, tx):
            fig.add_trace(trace, 1, 1)
        fig.add_trace(
            go.Scatter(
                x=step_t,
                y=curve.step_survival,
                mode="lines",
                line={"shape": "hv", "color": color},
                name=tx(
                    gettext_noop("{label} (n={n}, events={events})"),
                    label=label,
                    n=n,
                    events=events,
                ),
                legendgroup=label,
                customdata=at_risk,
                hovertemplate=tx.hover(
                    gettext_noop(
                        "{label}<br>day %{x:.0f}<br>{curve} %{y:.3f}<br>at risk %{customdata}"
                    ),
                    label=label,
                    curve=y_title,
                ),
            ),
            1,
            1,
        )
        median = _median_time(step_t, np.asarray(curve.step_survival, dtype=float))
        if median is not None:
            fig.add_trace(
                go.Scatter(
                    x=[0, median, median],
                    y=[0.5, 0.5, 0],
                    mode="lines",
                    line={"color": color, "dash": "dot", "width": 1},
                    name=tx(gettext_noop("{label} median"), label=label),
                    showlegend=False,
                    legendgroup=label,
                    hovertemplate=tx.hover(
                        gettext_noop("{label}: median day {day}"), label=label, day=f"{median:.0f}"
                    ),
                ),
                1,
                1,
            )
        if curve.censor_time:
            fig.add_trace(
                go.Scatter(
                    x=curve.censor_time,
                    y=curve.censor_survival,
                    mode="markers",
                    marker={"symbol": "line-ns-open", "size": 9, "color": color},
                    name=tx(gettext_noop("{label} censored"), label=label),
                    showlegend=False,
                    legendgroup=label,
                    hovertemplate=tx.hover(
                        gettext_noop("{label}<br>censored day %{x:.0f}"), label=label
                    ),
                ),
                1,
                1,
            )
        fig.add_trace(
            go.Scatter(
                x=risk_days,
                y=[label] * len(risk_days),
                mode="text",
                text=[str(small_cell_label(int(k), small_cell_min)) for k in curve.risk.at_risk],
                textfont={"color": color},
                showlegend=False,
                hovertemplate=tx.hover(
                    gettext_noop("{label}: %{text} at risk on day %{x}"), label=label
                ),
            ),
            2,
            1,
        )
    fig.update_yaxes(title_text=y_title, range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(
        title_text=tx(gettext_noop("At risk")),
        range=[len(groups) - 0.4, -0.6],
        showgrid=False,
        row=2,
        col=1,
        type="category",
    )
    fig.update_xaxes(title_text=x_title, row=2, col=1, tickvals=risk_days)
    fig.update_xaxes(tickvals=risk_days, showticklabels=False, row=1, col=1)
    if note:
        fig.add_annotation(
            text=note,
            xref="x domain",
            yref="y domain",
            x=0.99,
            y=0.98,
            showarrow=False,
            align="right",
            bgcolor="rgba(255,255,255,0.85)",
            bordercolor="#d9dee4",
            row=1,
            col=1,
        )
    fig.update_layout(
        title={"text": title, "x": 0.01},
        height=520,
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18},
        template="plotly_white",
        hovermode="closest",
    )
    return tx.attach(_compact(json.loads(fig.to_json())))


def cir_figure(
    rfs: pd.DataFrame,
    *,
    title: str,
    risk_days: Sequence[float],
    small_cell_min: int = 0,
    texts: FigureTexts | None = None,
) -> dict[str, Any]:
    """Aalen–Johansen cumulative incidence of relapse and of death without relapse, with the
    number at risk under the time axis as on every KM figure."""
    tx = texts or FigureTexts()
    table = aalen_johansen(rfs["time"], rfs["cir_event"])
    ticks = _readable_ticks(float(rfs["time"].max()) if len(rfs) else 0)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22], vertical_spacing=0.1
    )
    for k, (name, color, band) in enumerate(
        [
            (tx(gettext_noop("Relapse")), COLORS[1], BANDS[1]),
            (tx(gettext_noop("Death without relapse")), COLORS[0], BANDS[0]),
        ]
    ):
        t = [0.0, *table.time.tolist()]
        cif = [0.0, *table.cif[k].tolist()]
        lower = [0.0, *[None if np.isnan(v) else v for v in table.lower[k]]]
        upper = [0.0, *[None if np.isnan(v) else v for v in table.upper[k]]]
        for trace in _band(t, lower, upper, band, name, tx):
            fig.add_trace(trace, 1, 1)
        fig.add_trace(
            go.Scatter(
                x=t,
                y=cif,
                mode="lines",
                line={"shape": "hv", "color": color},
                name=name,
                customdata=[
                    small_cell_label(int(k), small_cell_min)
                    for k in [len(rfs), *table.n_at_risk.tolist()]
                ],
                hovertemplate=tx.hover(
                    gettext_noop(
                        "{label}<br>day %{x:.0f}<br>cumulative incidence %{y:.3f}"
                        "<br>at risk %{customdata}"
                    ),
                    label=name,
                ),
            ),
            1,
            1,
        )
    times = rfs["time"].to_numpy(float)
    fig.add_trace(
        go.Scatter(
            x=ticks,
            y=[tx(gettext_noop("CR patients"))] * len(ticks),
            mode="text",
            text=[
                str(small_cell_label(int((times >= day).sum()), small_cell_min)) for day in ticks
            ],
            showlegend=False,
            hovertemplate=tx.hover(gettext_noop("%{text} at risk on day %{x}")),
        ),
        2,
        1,
    )
    fig.update_yaxes(
        title_text=tx(gettext_noop("Cumulative incidence")), range=[0, 1], row=1, col=1
    )
    fig.update_yaxes(
        title_text=tx(gettext_noop("At risk")), type="category", showgrid=False, row=2, col=1
    )
    fig.update_xaxes(tickvals=ticks, showticklabels=False, row=1, col=1)
    fig.update_xaxes(
        title_text=tx(gettext_noop("Days after first infusion")), tickvals=ticks, row=2, col=1
    )
    fig.update_layout(
        title={"text": title, "x": 0.01},
        height=480,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
    )
    return tx.attach(_compact(json.loads(fig.to_json())))


def dashboard_figures(
    df: pd.DataFrame,
    report: dict[str, Any],
    *,
    rfs_origin: str = "infusion",
    censor_at_hsct: bool = False,
    small_cell_min: int = 0,
) -> dict[str, dict]:
    """Every figure of the dashboard, keyed by name; counts under ``small_cell_min`` (pooled
    registry-wide cohorts) are shown as "<min"."""
    risk_days = report["options"]["risk_days"]
    rfs = rfs_endpoint(df, origin=rfs_origin, censor_at_hsct=censor_at_hsct)
    os_cr = os_endpoint(df, cr_only=True)
    figures: dict[str, dict] = {}
    if len(rfs):
        tx = FigureTexts()
        figures["rfs"] = km_figure(
            [(tx(gettext_noop("RFS")), rfs["time"].to_numpy(float), rfs["event"].to_numpy(int))],
            title=tx(gettext_noop("Relapse-free survival, CR patients")),
            y_title=tx(gettext_noop("Relapse-free")),
            note=_fmt_median(report["rfs"].get("median_brookmeyer_crowley"), tx),
            risk_days=risk_days,
            small_cell_min=small_cell_min,
            texts=tx,
        )
    if len(os_cr):
        tx = FigureTexts()
        figures["os"] = km_figure(
            [(tx(gettext_noop("OS")), os_cr["time"].to_numpy(float), os_cr["event"].to_numpy(int))],
            title=tx(gettext_noop("Overall survival, CR patients")),
            y_title=tx(gettext_noop("Alive")),
            note=_fmt_median(report["os"].get("median_brookmeyer_crowley"), tx),
            risk_days=risk_days,
            small_cell_min=small_cell_min,
            texts=tx,
        )
    titles = {
        "early_regeneration": gettext_noop(
            "RFS by early B-cell regeneration (≤ day 45), naive split"
        ),
        "preemptive_category": gettext_noop("RFS of early regenerators by pre-emptive therapy"),
        "mrd_positive": gettext_noop("RFS by BM MRD positivity"),
        "car_loss": gettext_noop("RFS by loss of BM CAR copies"),
    }
    for key, (column, names) in COMPARISONS.items():
        tx = FigureTexts()
        rows = rfs
        if key == "preemptive_category":
            rows = rfs.loc[rfs["early_regen"].map(group_key) == "1"]
        keys = rows[column].map(group_key)
        groups = [
            (
                tx(label),  # the report's group names are messages (analytics.report)
                rows.loc[keys == value, "time"].to_numpy(float),
                rows.loc[keys == value, "event"].to_numpy(int),
            )
            for value, label in names.items()
        ]
        if sum(len(g[1]) for g in groups):
            figures[f"rfs_by_{key}"] = km_figure(
                groups,
                title=tx(titles[key]),
                y_title=tx(gettext_noop("Relapse-free")),
                note=_fmt_p(report["logrank"][key].get("p_value"), tx),
                risk_days=risk_days,
                small_cell_min=small_cell_min,
                texts=tx,
            )
    landmark_day = report["options"]["landmark_day"]
    rfs_inf = rfs_endpoint(df, origin="infusion", censor_at_hsct=censor_at_hsct)
    in_landmark = rfs_inf.loc[
        landmark_cohort_mask(rfs_inf["time"], landmark_day=landmark_day)
        & rfs_inf["early_regen"].map(group_key).notna()
    ]
    if len(in_landmark):
        tx = FigureTexts()
        keys = in_landmark["early_regen"].map(group_key)
        early, none = (
            COMPARISONS["early_regeneration"][1]["1"],
            COMPARISONS["early_regeneration"][1]["0"],
        )
        figures["landmark"] = km_figure(
            [
                (
                    tx(label),
                    in_landmark.loc[keys == v, "time"].to_numpy(float) - landmark_day,
                    in_landmark.loc[keys == v, "event"].to_numpy(int),
                )
                for v, label in (("1", early), ("0", none))
            ],
            title=tx(
                gettext_noop("Landmark at day {day}: RFS of patients relapse-free at the landmark"),
                day=f"{landmark_day:g}",
            ),
            y_title=tx(gettext_noop("Relapse-free")),
            note=_fmt_p(report["landmark"].get("logrank", {}).get("p_value"), tx),
            risk_days=risk_days,
            x_title=tx(gettext_noop("Days after the day-{day} landmark"), day=f"{landmark_day:g}"),
            small_cell_min=small_cell_min,
            texts=tx,
        )
    if len(rfs):
        tx = FigureTexts()
        figures["cir"] = cir_figure(
            rfs,
            title=tx(gettext_noop("Cumulative incidence of relapse (competing risk: death)")),
            risk_days=risk_days,
            small_cell_min=small_cell_min,
            texts=tx,
        )
    return figures
