"""What the dashboard's figures and headline table say: the CR rate over assessed patients
(CLINICAL.md §5), bands without stray markers, median lines, a risk table under every time axis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.figures import cir_figure, km_figure
from analytics.report import headline_report
from tests.analytics.synthetic_cohort import synthetic_frame


def test_patients_not_yet_assessed_are_counted_apart_never_as_failures():
    df = synthetic_frame()
    not_assessed = int((df["best_response"] == "NE").sum())
    assert not_assessed > 0  # the synthetic cohort has some, on purpose

    cr = headline_report(df)["cr_rate"]

    assert cr["n"] == len(df) - not_assessed
    assert cr["successes"] == int((df["cr"] == 1).sum())
    assert (cr["n_infused"], cr["n_not_assessed"]) == (len(df), not_assessed)
    assert cr["proportion"] == pytest.approx(cr["successes"] / (len(df) - not_assessed))


def _traces(figure, name_part=""):
    return [t for t in figure["data"] if name_part in (t.get("name") or "")]


def test_km_bands_are_lines_only_and_each_curve_has_its_median_line():
    time = np.array([10, 20, 30, 40, 50, 60, 70, 80], float)
    event = np.array([1, 1, 0, 1, 1, 0, 1, 1])
    figure = km_figure([("RFS", time, event)], title="t", y_title="Relapse-free")

    for trace in figure["data"]:
        if trace.get("fill") or trace.get("line", {}).get("width") == 0:
            assert trace["mode"] == "lines", trace.get("name")
    (median,) = _traces(figure, "median")
    assert median["y"] == [0.5, 0.5, 0] and median["x"][1] == median["x"][2]


def test_the_cumulative_incidence_figure_has_a_number_at_risk_table():
    rfs = pd.DataFrame({"time": [30.0, 90, 200, 400, 500], "cir_event": [1, 0, 2, 1, 0]})
    figure = cir_figure(rfs, title="CIR", risk_days=[])

    (table,) = [t for t in figure["data"] if t.get("mode") == "text"]
    assert table["x"][0] == 0 and table["text"][0] == "5"
    assert table["yaxis"] == "y2"
    for trace in figure["data"]:
        if trace.get("fill"):
            assert trace["mode"] == "lines"
