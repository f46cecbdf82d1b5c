"""Small-cell suppression on registry-wide (pooled) dashboards: counts of 1-4 patients are
shown as "<5"; one center's own dashboard keeps them; the statistics stay exact."""

import pytest

from analytics.disclosure import small_cell_label, suppress_counts
from analytics.services import snapshot_compute
from tests.analytics.test_snapshot import small_study


@pytest.mark.parametrize(
    ("count", "minimum", "shown"),
    [(0, 5, 0), (1, 5, "<5"), (4, 5, "<5"), (5, 5, 5), (120, 5, 120), (3, 0, 3), (2, 3, "<3")],
)
def test_small_cell_label_at_its_boundaries(count, minimum, shown):
    assert small_cell_label(count, minimum) == shown


def test_suppress_counts_touches_counts_only():
    report = {
        "rfs": {"n": 4, "events": 2, "median": 3.0},
        "logrank": {"x": {"groups": [{"label": "a", "n": 9, "events": 1}], "df": 1}},
        "flag": True,
    }
    assert suppress_counts(report, 5) == {
        "rfs": {"n": "<5", "events": "<5", "median": 3.0},
        "logrank": {"x": {"groups": [{"label": "a", "n": 9, "events": "<5"}], "df": 1}},
        "flag": True,
    }
    assert report["rfs"]["n"] == 4  # a copy: the stored report stays exact


def test_a_proportion_beside_a_suppressed_count_is_hidden_with_it():
    """ "<5/<5 = 33.3 %" would give away 1/3: the proportion and its interval go too."""
    report = {
        "cr_rate": {"successes": 1, "n": 3, "proportion": 1 / 3, "lower": 0.06, "upper": 0.79},
        "large": {"successes": 6, "n": 9, "proportion": 2 / 3, "lower": 0.35, "upper": 0.88},
    }
    assert suppress_counts(report, 5) == {
        "cr_rate": {"successes": "<5", "n": "<5", "proportion": None, "lower": None, "upper": None},
        "large": {"successes": 6, "n": 9, "proportion": 2 / 3, "lower": 0.35, "upper": 0.88},
    }


def _risk_texts(figures) -> list[str]:
    return [
        t
        for figure in figures.values()
        for trace in figure["data"]
        if trace.get("mode") == "text"
        for t in trace["text"]
    ]


@pytest.mark.django_db
def test_pooled_snapshot_hides_small_at_risk_counts_a_centers_own_does_not(
    client, registry, frozen_now, settings
):
    settings.SMALL_CELL_MIN = 5
    small_study()
    pooled = snapshot_compute(options={})
    texts = _risk_texts(pooled.figures)
    # Every non-zero count in a pooled figure is withheld (differencing, SECURITY.md).
    assert "withheld" in texts
    assert not [t for t in texts if t not in {"withheld", "0"}]
    assert isinstance(pooled.report["rfs"]["n"], int)  # exact numbers kept for R checks

    own = snapshot_compute(options={"center": "alpha"})
    assert any(t in {"1", "2", "3", "4"} for t in _risk_texts(own.figures))

    client.force_login(registry)
    page = client.get("/dashboard/").content.decode()
    assert "n=&lt;5" in page or "n=<5" in page or "events=&lt;5" in page
