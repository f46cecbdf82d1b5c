"""One patient's course as plain values for the course chart (`Course`), and its caption.

`course_for` reads them from the database; the figure (`monitoring.course_chart`) is built from
them alone, so it is tested without a database or a browser. Aplasia and regeneration are never
decided here: they are the rules' marks (`monitoring.engine.recovery_marks`) with the center's
parameters (or the alert's own), so the chart cannot contradict an alert. A PB B-cell count given
as % of lymphocytes is plotted as the rules read it (% × the sample's ALC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.utils import timezone
from django.utils.translation import gettext, ngettext

from monitoring.engine import RecoveryMark, recovery_marks
from monitoring.params import format_decimal
from monitoring.rules.recovery import is_detectable
from patients import formats, units
from patients.days import local_date

WINDOW_LAST_DAY = 45  # the study's window (CLINICAL.md §1): the default of a center's window
DERIVED_COUNT = "pb_bcell_from_pct"  # a Point of a PB B-cell count computed from % × ALC


@dataclass(frozen=True)
class Point:
    on: date
    analyte: str
    value: float | None  # canonical unit; None when not detectable (a qualifier)
    shown: str  # the value as entered, with its unit, for the hover


@dataclass(frozen=True)
class Marker:
    on: date
    label: str
    kind: str = ""
    detail: str = ""


@dataclass
class Course:
    study_id: str
    infusions: list[date]
    results: list[Point] = field(default_factory=list)
    responses: list[Marker] = field(default_factory=list)
    events: list[Marker] = field(default_factory=list)
    therapies: list[Marker] = field(default_factory=list)
    alerts: list[Marker] = field(default_factory=list)  # kind = severity
    # Aplasia and regeneration, as the rules decide them with the center's parameters
    # (`monitoring.engine.recovery_marks`): never decided here, so they cannot contradict an alert.
    marks: list[RecoveryMark] = field(default_factory=list)
    window_days: int = WINDOW_LAST_DAY  # the center's early-regeneration window
    # "Detectable" is above this count (cells/µL): the center's (or the alert's) threshold.
    threshold: float = 0.0


def _plotted(value) -> float | None:
    """A value with a logarithm is drawn at its height; zero or a qualifier on the floor line."""
    return float(value) if value is not None and value > 0 else None


def course_for(patient, *, alerts=None, params=None, now=None) -> Course:
    """The patient's stored records as plain values for the figure; the aplasia and regeneration
    marks by the rules with the center's parameters in force (``params`` to override: the alert
    page passes the alert's own, so that the chart and the alert cannot disagree)."""
    from monitoring.selectors import patient_timeline, rule_params_for

    tz = patient.center.tzinfo
    params = params or rule_params_for(patient.center)
    timeline = patient_timeline(patient)
    course = Course(
        study_id=patient.study_id,
        infusions=list(
            patient.infusions.order_by("infusion_date").values_list("infusion_date", flat=True)
        ),
        window_days=params.window_days,
        threshold=float(params.bcell_threshold),
        marks=recovery_marks(timeline, params, as_of=(now or timezone.now()).astimezone(tz).date()),
    )
    for r in patient.lab_results.order_by("collected_at", "pk"):
        course.results.append(
            Point(
                on=local_date(r.collected_at, tz),
                analyte=r.analyte,
                value=_plotted(r.canonical_value),
                shown=r.display_value,
            )
        )
    course.results += _derived_counts(timeline, params)
    for r in patient.responses.order_by("assessed_on"):
        course.responses.append(
            Marker(r.assessed_on, r.response, detail=r.get_mrd_status_display())
        )
    for e in patient.events.order_by("event_date"):
        detail = e.get_relapse_cd19_display() if e.kind == "relapse" else e.death_cause
        course.events.append(Marker(e.event_date, str(e.get_kind_display()), e.kind, detail or ""))
    for t in patient.therapies.order_by("start_date"):
        course.therapies.append(
            Marker(t.start_date, t.get_agent_display(), t.category, t.get_category_display())
        )
    for a in patient.alerts.order_by("raised_at") if alerts is None else alerts:
        if a.infusion_number > len(course.infusions):
            continue
        on = course.infusions[a.infusion_number - 1] + timedelta(days=a.day)
        status = a.get_status_display() + (", historical" if a.historical else "")
        course.alerts.append(Marker(on, a.title, a.severity, status))
    return course


def _derived_counts(timeline, params) -> list[Point]:
    """A count given as % of lymphocytes, drawn as the rules read it: % × the sample's ALC."""
    points = []
    for window in timeline.windows():
        for sample in window.bcell_samples():
            if sample.absolute is None and sample.percent is not None:
                detectable = is_detectable(sample, params)
                count = sample.count()
                points.append(
                    Point(
                        on=sample.collected_on,
                        analyte=DERIVED_COUNT,
                        value=_plotted(count) if detectable is not False else None,
                        shown=f"{format_decimal(count)} cells/µL (% × ALC)"
                        if count is not None
                        else f"{sample.percent.value} % of lymphocytes, no ALC",
                    )
                )
    return points


def course_summary(course: Course) -> str:
    """One sentence for the figure's caption: what a screen-reader user would look for first."""
    counts = [p for p in course.results if p.analyte == units.PB_BCELL_ABS]
    if not counts:
        return gettext("No PB B-cell count recorded yet.")
    detectable = sum(1 for p in counts if p.value is not None)
    last = counts[-1]
    return ngettext(
        "%(n)s PB B-cell count, %(detectable)s detectable; the last, %(date)s, %(shown)s.",
        "%(n)s PB B-cell counts, %(detectable)s detectable; the last, %(date)s, %(shown)s.",
        len(counts),
    ) % {
        "n": len(counts),
        "detectable": detectable,
        "date": formats.human_date(last.on),
        "shown": last.shown,
    }
