"""The patient course chart: built from plain values, then on the patient and alert pages."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from monitoring.course_chart import course_figure
from monitoring.course_data import Course, Marker, Point
from monitoring.engine import recovery_marks
from monitoring.models import Alert
from monitoring.params import RuleParams
from monitoring.timeline import InfusionPoint, ResultPoint, Timeline
from patients import units
from tests.factories import (
    BERLIN,
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
    ResponseFactory,
    TherapyFactory,
)

FIRST = date(2025, 3, 1)
SECOND = date(2025, 9, 1)


def count(day: int, value: float | None, start: date = FIRST) -> Point:
    on = start + timedelta(days=day)
    shown = "Undetectable" if value is None else f"{value} cells/µL"
    return Point(on, units.PB_BCELL_ABS, value, shown)


def trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_undetectable_counts_are_drawn_on_the_floor_line_never_dropped():
    course = Course("CT-1", [FIRST], results=[count(7, None), count(14, None), count(30, 4.0)])
    fig = course_figure(course)

    bcells = trace(fig, "PB B cells")
    assert list(bcells.x) == [7, 14, 30]
    floor = bcells.y[0]
    assert bcells.y[1] == floor and floor < 4.0  # both undetectables at the bottom
    assert list(bcells.marker.symbol) == ["triangle-down-open", "triangle-down-open", "circle"]
    assert fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis2.range[0] < math.log10(floor)  # the floor line is inside the axis
    assert "8 Mar 2025" in bcells.hovertext[0] and "day 7" in bcells.hovertext[0]


def timeline_of(infusions: list[date], counts: list[tuple[date, int, float | None]]) -> Timeline:
    """PB B-cell counts (start, day, cells/µL or None for undetectable) as the rules read them."""
    return Timeline(
        patient_ref="CT-1",
        birth_date=None,
        infusions=tuple(InfusionPoint(n, on, n) for n, on in enumerate(infusions, start=1)),
        results=tuple(
            ResultPoint(
                id=i,
                analyte=units.PB_BCELL_ABS,
                specimen=units.PB,
                collected_on=start + timedelta(days=day),
                collected_at=None,
                value=None if value is None else Decimal(str(value)),
                qualifier=units.UNDETECTABLE if value is None else "",
            )  # fmt: skip
            for i, (start, day, value) in enumerate(counts, start=1)
        ),
    )


def test_each_infusion_has_its_window_shaded_and_aplasia_and_regeneration_marked():
    counts = [(FIRST, 7, None), (FIRST, 30, 2.0), (SECOND, 5, None), (SECOND, 60, 9.0)]
    results = [count(day, value, start) for start, day, value in counts]
    # The marks are the rules' own (recovery_marks), never decided by the chart.
    marks = recovery_marks(timeline_of([FIRST, SECOND], counts), RuleParams())
    fig = course_figure(Course("CT-1", [FIRST, SECOND], results=results, marks=marks))

    second = (SECOND - FIRST).days
    windows = [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect"]
    assert windows == [(1, 45), (second + 1, second + 45)]
    labels = [a.text for a in fig.layout.annotations]
    assert labels.count("aplasia") == 2
    assert "early regeneration<br>(day 30)" in labels
    assert "late regeneration<br>(day 60)" in labels
    assert f"infusion 2 on day {second}" in fig.layout.xaxis4.title.text


def test_marrow_and_car_copies_have_axes_of_their_own_and_milestones_are_markers():
    results = [
        count(7, None),
        Point(FIRST + timedelta(28), units.BM_MRD_NGS, 0.0002, "0.0002 fraction of cells"),
        Point(FIRST + timedelta(28), units.BM_CAR_COPIES, 1500.0, "1500 copies/µg gDNA"),
        Point(FIRST + timedelta(90), units.BM_CAR_COPIES, None, "Undetectable"),
    ]
    course = Course(
        "CT-1",
        [FIRST],
        results=results,
        responses=[Marker(FIRST + timedelta(28), "CR")],
        events=[Marker(FIRST + timedelta(120), "Relapse", "relapse")],
        therapies=[Marker(FIRST + timedelta(40), "Chemotherapy", "anti_leukemic")],
        alerts=[Marker(FIRST + timedelta(30), "Early B-cell regeneration", "high", "Open")],
    )
    fig = course_figure(course)

    assert trace(fig, "BM MRD").yaxis == "y3" and trace(fig, "BM MRD").y[0] == pytest.approx(0.02)
    assert trace(fig, "BM CAR copies").yaxis == "y4"
    assert list(trace(fig, "BM CAR copies").marker.symbol) == ["circle", "triangle-down-open"]
    for name, day in [("Response", 28), ("Event", 120), ("Pre-emptive therapy", 40), ("Alert", 30)]:
        assert list(trace(fig, name).x) == [day], name
    relapse_lines = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == 120]
    assert relapse_lines, "a relapse is a line across the course"


def test_sixty_results_and_two_infusions_stay_one_readable_figure():
    results = [count(d, None if d % 3 else float(d)) for d in range(1, 61)]
    fig = course_figure(Course("CT-1", [FIRST, SECOND], results=results))
    assert len(trace(fig, "PB B cells").x) == 60
    assert fig.layout.height >= 600


@pytest.fixture
def charted_patient(center):
    patient = PatientFactory(center=center, study_id="CT-0100")
    infusion = InfusionFactory(patient=patient, infusion_date=FIRST)
    for day, value in [(7, None), (21, Decimal("0.012"))]:
        LabResultFactory(
            patient=patient,
            collected_at=datetime(2025, 3, 1, 9, 0, tzinfo=BERLIN) + timedelta(days=day),
            value=value,
            qualifier="" if value is not None else units.UNDETECTABLE,
            unit=units.GIGA_PER_L,
        )
    ResponseFactory(patient=patient)
    TherapyFactory(patient=patient)
    EventFactory(patient=patient, kind="relapse", event_date=date(2025, 8, 1))
    alert = Alert.objects.create(
        patient=patient, infusion=infusion, infusion_number=1, rule="early_regeneration",
        severity="high", title="Early B-cell regeneration", day=21, rule_version="default-1",
    )  # fmt: skip
    return patient, alert


def page_figure(html: str, key: str) -> dict:
    found = re.search(
        rf'<script id="course-figure-{key}" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "the figure JSON block is missing"
    return json.loads(found.group(1))


@pytest.mark.django_db
def test_patient_and_alert_pages_carry_the_figure_as_data_not_inline_script(
    clinician_client, charted_patient
):
    patient, alert = charted_patient
    for url, key in [
        (reverse("patients:detail", args=[patient.study_id]), "patient"),
        (reverse("monitoring:alert", args=[alert.pk]), "alert"),
    ]:
        html = clinician_client.get(url).content.decode()
        figure = page_figure(html, key)
        names = {t.get("name") for t in figure["data"]}
        assert {"PB B cells", "Response", "Event", "Pre-emptive therapy", "Alert"} <= names
        bcells = next(t for t in figure["data"] if t.get("name") == "PB B cells")
        assert bcells["x"] == [7, 21] and bcells["y"][1] == pytest.approx(12)  # 0.012 ×10⁹/L
        # Every <script> either loads a static file or carries JSON: the pages run under a CSP.
        for attributes in re.findall(r"<script([^>]*)>", html):
            assert "src=" in attributes or 'type="application/json"' in attributes, attributes
        assert "2 PB B-cell counts, 1 detectable" in html  # the caption's text alternative
