"""The course chart read at a glance (issue 23): it opens on the first infusion's days -7 to 90,
each infusion and the whole course are one control away, and its labels are placed by the code
so that no two of them overlap, in any view."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import combinations

import pytest

from monitoring.chart_labels import NARROW_PLOT_PX, Label, box_for, place
from monitoring.course_chart import course_figure
from monitoring.course_data import Course, Marker, Point
from monitoring.course_views import course_views
from monitoring.engine import EARLY_MARK, LATE_MARK, recovery_marks
from monitoring.params import RuleParams
from patients import units
from tests.monitoring.test_course_chart import (  # noqa: F401 (a fixture)
    charted_patient,
    page_figure,
    timeline_of,
)

FIRST = date(2025, 3, 1)
SECOND = date(2025, 5, 10)  # day 70: the two windows' labels are close in the whole course


def two_infusions_151_results() -> Course:
    """Two infusions, 151 PB B-cell counts (every 5 days over 750 days), aplasia after each,
    an early regeneration after the first and a late one after the second; responses and events
    close together so that their labels would collide if they were not placed."""
    counts = []
    second = (SECOND - FIRST).days
    for i in range(151):
        day = -5 + 5 * i
        if day < 0:
            value = 80.0
        elif day < 30:
            value = None
        elif day < second:
            value = 3.0 * (day - 25)
        elif day < second + 60:
            value = None
        else:
            value = 12.0
        counts.append((FIRST, day, value))
    marks = recovery_marks(timeline_of([FIRST, SECOND], counts), RuleParams())
    results = [
        Point(
            start + timedelta(days=day),
            units.PB_BCELL_ABS,
            value,
            "Undetectable" if value is None else f"{value} cells/µL",
        )
        for start, day, value in counts
    ]
    return Course(
        "CT-151",
        [FIRST, SECOND],
        results=results,
        responses=[
            Marker(FIRST + timedelta(28), "CR"),
            Marker(FIRST + timedelta(31), "CRi"),
            Marker(SECOND + timedelta(28), "CR"),
        ],
        events=[
            Marker(FIRST + timedelta(400), "Relapse", "relapse"),
            Marker(FIRST + timedelta(404), "Death", "death"),
            Marker(FIRST + timedelta(740), "Last follow-up", "last_followup"),
        ],
        marks=marks,
    )


def placed_annotations(fig, view_index: int) -> list[tuple[str, object]]:
    update = fig.layout.meta["relayouts"][view_index]
    return [
        (a.name, a)
        for i, a in enumerate(fig.layout.annotations)
        if a.name and update.get(f"annotations[{i}].visible")
    ]


def test_the_chart_opens_on_the_first_infusions_days_minus_7_to_90():
    course = two_infusions_151_results()
    fig = course_figure(course)
    assert list(fig.layout.xaxis.range) == [-7, 90]
    views = course_views(course)
    second = (SECOND - FIRST).days
    assert [v.x_range for v in views[:2]] == [(-7, 90), (second - 7, second + 90)]
    assert views[2].key == "course" and views[2].x_range == (-5 - 3, 745 + 5)  # every point
    # Each button's relayout shows its view on every row (the rows share the x axis).
    for view, update in zip(views, fig.layout.meta["relayouts"], strict=True):
        for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4"):
            assert update[f"{axis}.range"] == list(view.x_range)
    assert [v["label"] for v in fig.layout.meta["views"]] == [
        "Infusion 1: day −7 to 90",
        "Infusion 2: day −7 to 90",
        "Whole course",
    ]


def test_one_infusion_has_its_own_view_and_the_whole_course():
    course = Course(
        "CT-1", [FIRST], results=[Point(FIRST + timedelta(7), units.PB_BCELL_ABS, None, "")]
    )
    assert [v.key for v in course_views(course)] == ["infusion-1", "course"]
    # A short course still shows the whole window and a little after.
    assert course_views(course)[1].x_range == (-6, 60)


@pytest.mark.parametrize("view_index", [0, 1, 2], ids=["infusion-1", "infusion-2", "course"])
def test_no_two_labels_overlap_at_390_px_in_any_view(view_index):
    course = two_infusions_151_results()
    view = course_views(course)[view_index]
    labels = _labels_of(course)
    placed = place(labels, view.x_range)
    boxes = [(k, p.box) for k, p in placed.items() if p.lane is not None]
    assert len(boxes) >= 3, boxes  # the test has labels to compare
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        assert not box_a.meets(box_b), f"{a} and {b} overlap in {view.key}"
    # Every regeneration mark inside the view is shown: it is the chart's reason to exist.
    for key, p in placed.items():
        if key.startswith("mark-") and "regeneration" in p.label.text:
            inside = view.x_range[0] <= p.label.x <= view.x_range[1]
            assert (p.lane is not None) == inside, key


def test_without_placement_the_labels_would_overlap():
    """The case the issue saw: both windows' labels and both aplasia marks in the whole course
    at 390 px. Lane 0 for all makes boxes meet; placement separates them."""
    course = two_infusions_151_results()
    full = course_views(course)[-1].x_range
    labels = _labels_of(course)
    same_lane = [box_for(label, 0, *full, NARROW_PLOT_PX) for label in labels]
    assert any(a.meets(b) for a, b in combinations(same_lane, 2))
    lanes = {k: p.lane for k, p in place(labels, full).items()}
    assert lanes["window-1"] != lanes["window-2"]


def test_the_placement_in_the_figure_is_the_one_applied_per_view():
    course = two_infusions_151_results()
    fig = course_figure(course)
    relayouts = fig.layout.meta["relayouts"]
    index = {a.name: i for i, a in enumerate(fig.layout.annotations) if a.name}
    placements = [place(_labels_of(course), v.x_range) for v in course_views(course)]
    for update, placed in zip(relayouts, placements, strict=True):
        for key, p in placed.items():
            i = index[key]
            assert update[f"annotations[{i}].visible"] is (p.lane is not None)
            if p.lane is not None and key.startswith("window-"):
                assert update[f"annotations[{i}].yshift"] == p.label.dy_px + p.lane * 15
    # The figure as drawn first is the first view's placement.
    for key, p in placements[0].items():
        assert fig.layout.annotations[index[key]].visible is (p.lane is not None)


def test_the_regeneration_mark_and_its_day_are_beside_the_point_not_on_it():
    course = two_infusions_151_results()
    fig = course_figure(course)
    marks = {m.kind: m for m in course.marks}
    assert {EARLY_MARK, LATE_MARK} <= set(marks)
    text = "early regeneration<br>(day 30)"
    early = next(a for a in fig.layout.annotations if a.text == text)
    assert early.x == 30 and early.showarrow  # the arrow points at the count itself
    assert early.ay < 0 and early.yanchor == "bottom"  # above the point, beside it
    assert (early.ax > 0) == (early.xanchor == "left")  # the text starts where the arrow ends
    # Its box never covers the point it names, and stays inside a 390 px phone's plot.
    label = next(lb for lb in _labels_of(course) if lb.text == text)
    placed = place([label], (-7, 90))[label.key]
    point_px = (30 + 7) / 97 * NARROW_PLOT_PX
    assert placed.box.bottom > label.y_px
    assert placed.box.right < point_px or placed.box.left > point_px
    assert 0 <= placed.box.left and placed.box.right <= NARROW_PLOT_PX
    # Up and to the left where there is room (the count rose from the floor on its left).
    wide = place([label], (-7, 90), width_px=1200)[label.key]
    assert wide.side == "left" and wide.box.right < (30 + 7) / 97 * 1200


def test_a_label_that_would_leave_the_plot_goes_to_the_other_side():
    near_left = Label("a", "early regeneration", x=2, side="left")
    placed = place([near_left], (0, 100))["a"]
    assert placed.side == "right" and placed.box.left >= 0
    near_right = Label("b", "aplasia", x=99, side="right")
    placed = place([near_right], (0, 100))["b"]
    assert placed.side == "left" and placed.box.right <= NARROW_PLOT_PX


def test_the_threshold_is_drawn_as_the_alert_used_it():
    params = RuleParams(window_days=30, bcell_threshold=5)
    counts = [(FIRST, 7, None), (FIRST, 14, 3.0), (FIRST, 21, 8.0)]
    marks = recovery_marks(timeline_of([FIRST], counts), params)
    results = [Point(FIRST + timedelta(d), units.PB_BCELL_ABS, v, "") for _s, d, v in counts]
    course = Course("CT-1", [FIRST], results=results, marks=marks, window_days=30, threshold=5.0)
    fig = course_figure(course)
    assert [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect"] == [(1, 30)]
    assert any(s.type == "line" and s.y0 == 5.0 and s.yref == "y2" for s in fig.layout.shapes)
    texts = [a.text for a in fig.layout.annotations]
    assert "infusion 1: day 1–30" in texts
    # 3 cells/µL is not above the threshold: the regeneration is day 21, as the rule says.
    assert "early regeneration<br>(day 21)" in texts


def _labels_of(course: Course) -> list[Label]:
    """The labels the figure placed, rebuilt from its annotations and the placement's inputs."""
    from monitoring import course_chart

    captured = {}
    original = course_chart.place

    def spy(labels, x_range, *args, **kwargs):
        captured["labels"] = labels
        return original(labels, x_range, *args, **kwargs)

    course_chart.place = spy
    try:
        course_figure(course)
    finally:
        course_chart.place = original
    return captured["labels"]


def test_labels_at_one_day_take_the_next_lanes_and_a_full_column_hides_the_last():
    same = [Label(k, "aplasia", x=0, lanes=2) for k in "abc"]
    placed = place(same, (0, 100))
    assert [placed[k].lane for k in "abc"] == [0, 1, None]
    assert not placed["a"].box.meets(placed["b"].box)
    far = place([Label("a", "aplasia", x=0), Label("b", "aplasia", x=90)], (0, 100))
    assert far["a"].lane == far["b"].lane == 0  # apart at 390 px: one lane
    outside = place([Label("a", "aplasia", x=120)], (0, 100))
    assert outside["a"].lane is None
    with pytest.raises(ValueError):
        place(same, (5, 5))


@pytest.mark.django_db
def test_the_alert_page_draws_the_window_and_threshold_the_alert_was_evaluated_with(
    clinician_client,
    charted_patient,  # noqa: F811 (the fixture imported above)
):
    """The chart on the alert page must never disagree with the alert: its stored parameters
    (a 30-day window, a 5 cells/µL threshold) are drawn, not the center's current defaults."""
    from django.urls import reverse

    patient, alert = charted_patient
    alert.params = RuleParams(version="alpha-2", window_days=30, bcell_threshold=5).to_dict()
    alert.save()
    html = clinician_client.get(reverse("monitoring:alert", args=[alert.pk])).content.decode()
    figure = page_figure(html, "alert")
    texts = [a.get("text") for a in figure["layout"]["annotations"]]
    assert "infusion 1: day 1–30" in texts
    assert [(s["x0"], s["x1"]) for s in figure["layout"]["shapes"] if s["type"] == "rect"] == [
        (1, 30)
    ]
    assert any(s.get("y0") == 5 and s.get("yref") == "y2" for s in figure["layout"]["shapes"])
    assert "above 5 cells/µL" in html
    assert 'aria-pressed="true"' in html and "Whole course" in html
    # The patient page keeps the center's parameters in force (the study's 45 days).
    page = clinician_client.get(reverse("patients:detail", args=[patient.study_id]))
    texts = [
        a.get("text")
        for a in page_figure(page.content.decode(), "patient")["layout"]["annotations"]
    ]
    assert "infusion 1: day 1–45" in texts
