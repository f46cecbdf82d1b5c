"""The x ranges the course chart's buttons show (an infusion's days −7 to 90, the whole course),
and the `Plotly.relayout` arguments that show one: its range and its labels' placed lanes."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext

from monitoring.course_data import Course

VIEW_BEFORE, VIEW_AFTER = 7, 90  # an infusion's view: days -7 to 90 of that infusion


@dataclass(frozen=True)
class View:
    """One x range a control of the chart shows: an infusion's days -7 to 90, or the course."""

    key: str
    label: str
    x_range: tuple[float, float]


def course_views(course: Course) -> list[View]:
    """The chart's views, the first infusion's first (the one it opens on)."""
    first = course.infusions[0]
    views = []
    for number, start in enumerate(course.infusions, start=1):
        x0 = (start - first).days
        views.append(
            View(
                f"infusion-{number}",
                gettext("Infusion %(number)s: day −%(before)s to %(after)s")
                % {"number": number, "before": VIEW_BEFORE, "after": VIEW_AFTER},
                (x0 - VIEW_BEFORE, x0 + VIEW_AFTER),
            )
        )
    days = [(p.on - first).days for p in course.results] + [
        (m.on - first).days
        for m in (*course.responses, *course.events, *course.therapies, *course.alerts)
    ]
    last_window_end = (course.infusions[-1] - first).days + course.window_days
    left = min([-3, *days]) - 3
    right = max([last_window_end + 10, *days]) + 5
    views.append(View("course", gettext("Whole course"), (left, right)))
    return views


def view_relayout(fig, view: View, placed) -> dict:
    """The Plotly.relayout arguments that show ``view``: its x range and its labels' lanes
    (``placed``: `chart_labels.place` of the figure's labels for that view)."""
    update = {f"xaxis{n if n > 1 else ''}.range": list(view.x_range) for n in range(1, 5)}
    for i, annotation in enumerate(fig.layout.annotations):
        p = placed.get(annotation.name)
        if p is None:
            continue
        update[f"annotations[{i}].visible"] = p.lane is not None
        lane = p.lane or 0
        side = p.side or p.label.side
        if annotation.showarrow:
            update[f"annotations[{i}].ay"] = -(p.label.dy_px + lane * p.label.lane_px)
            update[f"annotations[{i}].ax"] = p.label.dx_px if side == "right" else -p.label.dx_px
        else:
            update[f"annotations[{i}].yshift"] = p.label.dy_px + lane * p.label.lane_px
            update[f"annotations[{i}].xshift"] = (
                p.label.dx_px if side == "right" else -p.label.dx_px
            )
        update[f"annotations[{i}].xanchor"] = "left" if side == "right" else "right"
    return update
