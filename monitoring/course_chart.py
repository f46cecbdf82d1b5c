"""One patient's course as a plotly figure: the B-cell count against the 45-day window.

The figure is built from plain values (`monitoring.course_data.Course`), so it is tested without
a browser. The x axis is days after the first infusion (a second infusion is drawn as its own
day 0 with its own shaded window), every point's hover gives the date and its clinical day. B
cells are on a log axis; a count that is not detectable has no logarithm, so it is drawn
distinctly on a floor line at the bottom, never dropped. BM MRD and CAR copies have rows of their
own; responses, events, pre-emptive therapies and alerts are markers in a strip on top. The text
labels are placed view by view (`monitoring.chart_labels`, `monitoring.course_views`) so that no
two overlap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date

import plotly.graph_objects as go
from django.utils.translation import gettext, pgettext
from plotly.subplots import make_subplots

from monitoring.chart_labels import Label, place
from monitoring.course_data import DERIVED_COUNT, Course, Point
from monitoring.course_views import course_views, view_relayout
from monitoring.engine import APLASIA_MARK, EARLY_MARK, RecoveryMark
from patients import formats, units
from patients.days import clinical_day

SEVERITY_COLORS = {
    "high": "#b3261e",
    "warning": "#8a5200",
    "info": "#2f6fb0",
    "reminder": "#5d6b7a",
}
EVENT_STYLE = {  # kind -> (label, marker symbol, colour); the label is translated where drawn
    "relapse": ("Relapse", "x", "#b3261e"),
    "death": ("Death", "cross", "#1d2733"),
    "hsct": ("Allogeneic HSCT", "star", "#6a3d9a"),
    "last_followup": ("Last follow-up", "line-ns-open", "#5d6b7a"),
}
HEIGHT = 760
MARGIN = {"l": 64, "r": 16, "b": 70}
LANE_PX = 15  # one lane of the labels above the plot
TOP_LANES = 3
STRIP = {"alerts": 0, "therapy": 1, "events": 2, "response": 3}
STRIP_SPAN = (-0.6, 3.8)


def strip_labels() -> list[str]:
    return [
        pgettext("course chart row", "Alerts"),
        pgettext("course chart row", "Therapy"),
        pgettext("course chart row", "Events"),
        pgettext("course chart row", "Response"),
    ]


def mark_label(mark: RecoveryMark) -> str:
    if mark.kind == APLASIA_MARK:
        return gettext("aplasia")
    if mark.kind == EARLY_MARK:
        return gettext("early regeneration<br>(day %(day)s)") % {"day": mark.day}
    return gettext("late regeneration<br>(day %(day)s)") % {"day": mark.day}


def event_label(kind: str) -> str:
    return {
        "relapse": gettext("Relapse"),
        "death": gettext("Death"),
        "hsct": gettext("Allogeneic HSCT"),
        "last_followup": gettext("Last follow-up"),
    }.get(kind, kind)


@dataclass
class _Labels:
    """The text labels `chart_labels.place` positions view by view, and the rest of each one's
    annotation (added to the figure once every row is drawn)."""

    labels: list[Label] = field(default_factory=list)
    annotations: dict[str, dict] = field(default_factory=dict)

    def add(self, label: Label, annotation: dict) -> None:
        self.labels.append(label)
        self.annotations[label.key] = annotation


def course_figure(course: Course) -> go.Figure:
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.17, 0.45, 0.19, 0.19],
        vertical_spacing=0.06,
    )
    labels = _Labels()
    _windows_and_events(fig, course, labels)
    _strip_row(fig, course, labels)
    _bcell_row(fig, course, labels)
    _marrow_rows(fig, course)
    _x_title(fig, course)
    _views_and_layout(fig, course, labels)
    return fig


def course_chart_json(course: Course) -> dict | None:
    """The figure as plain JSON for the page, or None when there is no day 0 to draw from.

    ``layout.meta`` carries the views: their labels (the page's buttons) and, view by view, the
    ``Plotly.relayout`` arguments (the x range and the labels' placed lanes)."""
    if not course.infusions:
        return None
    return json.loads(course_figure(course).to_json())


def _windows_and_events(fig, course: Course, labels: _Labels) -> None:
    """Each infusion's line and shaded window (labelled above the plot), and the lines of a
    relapse, a death and an HSCT: drawn across every row (yref "paper"), which share one x."""
    first = course.infusions[0]
    plot_top = HEIGHT - MARGIN["b"] - _top_margin()
    for number, start in enumerate(course.infusions, start=1):
        x0 = (start - first).days
        fig.add_shape(
            type="rect", x0=x0 + 1, x1=x0 + course.window_days, xref="x", y0=0, y1=1, yref="paper",
            fillcolor="rgba(179,38,30,0.07)", line_width=0, layer="below",
        )  # fmt: skip
        fig.add_shape(
            type="line", x0=x0, x1=x0, xref="x", y0=0, y1=1, yref="paper",
            line={"color": "#1f4e79", "width": 1.5},
        )  # fmt: skip
        key = f"window-{number}"
        labels.add(
            Label(
                key,
                gettext("infusion %(number)s: day 1–%(window)s")
                % {"number": number, "window": course.window_days},
                x=x0 + 1,
                y_px=plot_top + 2,
                lane_px=LANE_PX,
                lanes=TOP_LANES,
            ),
            {
                "x": x0 + 1, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
                "xanchor": "left", "showarrow": False, "yshift": 2,
                "font": {"size": 10, "color": "#4a5560"},
            },
        )  # fmt: skip
    for event in course.events:
        if event.kind in ("relapse", "death", "hsct"):
            x = (event.on - first).days
            fig.add_shape(
                type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                line={"color": EVENT_STYLE[event.kind][2], "dash": "dash", "width": 1.5},
            )  # fmt: skip


def _strip_row(fig, course: Course, labels: _Labels) -> None:
    """The strip on top: one marker per response, event, therapy and alert; the responses' and
    events' names are placed labels above their markers."""
    first = course.infusions[0]
    strips = [
        (gettext("Response"), course.responses, "response", "diamond", lambda m: "#2e7d32"),
        (gettext("Event"), course.events, "events", None, lambda m: EVENT_STYLE[m.kind][2]),
        (gettext("Pre-emptive therapy"), course.therapies, "therapy", "triangle-right", None),
        (
            gettext("Alert"),
            course.alerts,
            "alerts",
            "square",
            lambda m: SEVERITY_COLORS.get(m.kind),
        ),
    ]
    for name, markers, strip, symbol, color in strips:
        if not markers:
            continue
        colors = [
            color(m) if color else ("#b3261e" if m.kind == "anti_leukemic" else "#6a3d9a")
            for m in markers
        ]
        symbols = [symbol or EVENT_STYLE[m.kind][1] for m in markers]
        fig.add_trace(
            go.Scatter(
                x=[(m.on - first).days for m in markers],
                y=[STRIP[strip]] * len(markers),
                mode="markers",
                name=name,
                marker={"symbol": symbols, "size": 11, "color": colors, "line": {"width": 2}},
                hovertext=[
                    _hover(course, m.on, f"{m.label}{' · ' + m.detail if m.detail else ''}")
                    for m in markers
                ],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
        if strip in ("response", "events"):
            _strip_labels(fig, course, labels, strip, markers)
    fig.update_yaxes(
        tickvals=list(range(4)), ticktext=strip_labels(), range=list(STRIP_SPAN),
        fixedrange=True, showgrid=False, row=1, col=1,
    )  # fmt: skip


def _strip_labels(fig, course: Course, labels: _Labels, strip: str, markers) -> None:
    first = course.infusions[0]
    for i, m in enumerate(markers):
        key = f"{strip}-{i}"
        text = event_label(m.kind) if strip == "events" else m.label
        x = (m.on - first).days
        labels.add(
            Label(
                key, text, x=x, y_px=_row_px(fig, 1, STRIP[strip], STRIP_SPAN),
                dx_px=7, dy_px=-7, lanes=1, priority=2,
            ),
            {
                "x": x, "xref": "x", "y": STRIP[strip], "yref": "y", "xanchor": "left",
                "yanchor": "bottom", "showarrow": False, "xshift": 7, "yshift": -7,
                "font": {"size": 10, "color": "#1d2733"},
            },
        )  # fmt: skip


def _of(course: Course, *codes) -> list[Point]:
    return [p for p in course.results if p.analyte in codes]


def _bcell_row(fig, course: Course, labels: _Labels) -> None:
    """The PB B cells (measured, and from % × ALC) against the threshold, with the rules'
    aplasia and regeneration marks labelled beside their points."""
    bcell_span = _log_row(
        fig, course, 2,
        [(gettext("PB B cells"), _of(course, units.PB_BCELL_ABS), "#b3261e"),
         (gettext("PB B cells (% × ALC)"), _of(course, DERIVED_COUNT), "#d9730d")],
        unit_label=gettext("PB B cells<br>cells/µL"), floor_label=gettext("not detectable"),
        threshold=course.threshold or None,
    )  # fmt: skip
    floor = _floor([p.value for p in _of(course, units.PB_BCELL_ABS, DERIVED_COUNT) if p.value])
    first = course.infusions[0]
    for i, mark in enumerate(course.marks):
        key = f"mark-{i}"
        x = (mark.on - first).days
        y = math.log10(float(mark.count) if mark.count is not None else floor)
        # Beside the point, never on its line: regeneration rises from the floor on its left, so
        # its label goes up and to the left; aplasia's line runs on along the floor, so up-right.
        side = "right" if mark.kind == APLASIA_MARK else "left"
        labels.add(
            Label(
                key, mark_label(mark), x=x, y_px=_row_px(fig, 2, y, bcell_span), side=side,
                dx_px=10, dy_px=20, lane_px=16, lanes=4, font_px=11,
                priority=1 if mark.kind == APLASIA_MARK else 0,
            ),
            {
                "x": x, "y": y, "xref": "x2", "yref": "y2", "showarrow": True, "arrowhead": 2,
                "arrowwidth": 1, "arrowcolor": "#4a5560", "standoff": 5, "axref": "pixel",
                "ayref": "pixel", "xanchor": "left" if side == "right" else "right",
                "yanchor": "bottom", "ax": 10 if side == "right" else -10, "ay": -20,
                "font": {"size": 11, "color": "#1d2733"}, "bgcolor": "rgba(255,255,255,0.9)",
            },
        )  # fmt: skip


def _marrow_rows(fig, course: Course) -> None:
    """BM MRD (NGS as a fraction, drawn in % like flow) and the CAR copies."""
    mrd = [
        Point(p.on, p.analyte, None if p.value is None else p.value * 100, p.shown)
        if p.analyte == units.BM_MRD_NGS
        else p
        for p in _of(course, units.BM_MRD_FLOW, units.BM_MRD_NGS)
    ]
    _log_row(
        fig, course, 3, [(gettext("BM MRD"), mrd, "#8a5200")],
        # xgettext:no-python-format
        unit_label=gettext("BM MRD<br>% of cells"), floor_label=gettext("MRD negative"),
        threshold=0.01,
    )  # fmt: skip
    _log_row(
        fig, course, 4,
        [(gettext("BM CAR copies"), _of(course, units.BM_CAR_COPIES), "#1f4e79"),
         (gettext("PB CAR copies"), _of(course, units.PB_CAR_COPIES), "#2f6fb0")],
        unit_label=gettext("CAR copies<br>per µg DNA"), floor_label=gettext("not detectable"),
    )  # fmt: skip


def _x_title(fig, course: Course) -> None:
    first = course.infusions[0]
    second = [(d - first).days for d in course.infusions[1:]]
    fig.update_xaxes(
        title_text=gettext("Days after the first infusion")
        + "".join(
            gettext(" · infusion %(number)s on day %(day)s") % {"number": n, "day": d}
            for n, d in enumerate(second, start=2)
        ),
        title_font={"size": 11},
        row=4,
        col=1,
    )


def _views_and_layout(fig, course: Course, labels: _Labels) -> None:
    """The labels placed for each view, added as annotations; the layout, opening on the first
    view, with every view's relayout in ``layout.meta`` for the page's buttons."""
    views = course_views(course)
    placements = [place(labels.labels, view.x_range) for view in views]
    for label in labels.labels:
        fig.add_annotation(name=label.key, text=label.text, **labels.annotations[label.key])
    relayouts = [
        view_relayout(fig, view, placed) for view, placed in zip(views, placements, strict=True)
    ]
    fig.update_xaxes(zeroline=False, gridcolor="#e6e9ed", range=list(views[0].x_range))
    fig.update_layout(
        height=HEIGHT,
        autosize=True,
        margin={**MARGIN, "t": _top_margin()},
        plot_bgcolor="#fff",
        paper_bgcolor="#fff",
        font={"family": "system-ui, sans-serif", "size": 12, "color": "#1d2733"},
        legend={"orientation": "h", "y": -0.09, "x": 0, "font": {"size": 11}},
        hovermode="closest",
        meta={"views": [{"key": v.key, "label": v.label} for v in views]},
    )
    fig.update_layout(relayouts[0])
    fig.layout.meta["relayouts"] = relayouts


def _hover(course: Course, on: date, text: str) -> str:
    day = clinical_day(on, course.infusions)
    return f"{text}<br>{formats.human_date(on)} · {day}"


def _floor(values: list[float]) -> float:
    """Where not-detectable results are drawn: a decade below the smallest detectable value."""
    positive = [v for v in values if v and v > 0]
    if not positive:
        return 0.1
    return min(0.1, 10 ** (math.floor(math.log10(min(positive))) - 1))


def _log_row(fig, course, row, series, *, unit_label, floor_label, threshold=None):
    """One log-scaled row: detectable values as filled markers, the rest on the floor line; returns
    the row's y range (decades)."""
    all_values = [p.value for _name, points, _c in series for p in points if p.value]
    floor = _floor(all_values)
    top = max([*all_values, *([threshold] if threshold else [])], default=1.0)
    for name, points, color in series:
        if not points:
            continue
        x = [(p.on - course.infusions[0]).days for p in points]
        y = [p.value if p.value is not None else floor for p in points]
        symbols = ["circle" if p.value is not None else "triangle-down-open" for p in points]
        hover = [_hover(course, p.on, f"{name}: {p.shown}") for p in points]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                name=name,
                line={"color": color, "width": 1},
                marker={"symbol": symbols, "size": 8, "color": color, "line": {"width": 1.5}},
                hovertext=hover,
                hoverinfo="text",
            ),
            row=row,
            col=1,
        )
    fig.add_hline(y=floor, line={"color": "#8a949f", "dash": "dot", "width": 1}, row=row, col=1)
    fig.add_annotation(
        x=0, xref="paper", xanchor="left", y=math.log10(floor), yref=f"y{row}", yanchor="top",
        text=floor_label, showarrow=False, font={"size": 10, "color": "#4a5560"},
    )  # fmt: skip
    if threshold:
        fig.add_hline(y=threshold, line={"color": "#8a5200", "dash": "dash", "width": 1}, row=row)
    span = (math.log10(floor) - 0.3, math.log10(max(top, floor * 10)) + 0.3)
    fig.update_yaxes(
        type="log",
        dtick=1,  # decades only: 1, 10, 100 (minor ticks crowd a small row)
        title_text=unit_label,
        title_font={"size": 11},
        range=list(span),
        row=row,
        col=1,
    )
    return span


def _row_px(fig, row: int, value: float, span: tuple[float, float]) -> float:
    """A height in row ``row`` (in its axis's units) as pixels above the plot area's bottom."""
    height = HEIGHT - MARGIN["b"] - _top_margin()
    axis = fig.layout["yaxis" if row == 1 else f"yaxis{row}"]
    bottom, top = axis.domain
    fraction = (value - span[0]) / (span[1] - span[0])
    return (bottom + (top - bottom) * min(max(fraction, 0.0), 1.0)) * height


def _top_margin() -> int:
    return 14 + LANE_PX * TOP_LANES
