"""Rule performance: the pure statistics on hand-made tables, small-cell suppression, and the
page /dashboard/rules/ with its exports (who may see it, what it shows)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from django.contrib.auth.models import Permission

from analytics.calibration import calibration_grid, regeneration_known_day
from analytics.course_tables import ALERT_COLUMNS, read_alerts_csv, read_bcell_csv
from analytics.disclosure import suppress_group, suppress_small
from analytics.performance import (
    alert_outcomes,
    early_regeneration_accuracy,
    pooled_alert_outcomes,
)
from monitoring.services import alerts_sync
from tests.analytics.test_dataset import infused_patient
from tests.factories import UserFactory

RULES = "/dashboard/rules/"
NAN = math.nan


def alerts_table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ALERT_COLUMNS))


def analysis_rows(rows: list[tuple]) -> pd.DataFrame:
    """(study_id, center, cr, rfs_days, relapse_day, death_day, last_followup_day)."""
    frame = pd.DataFrame(
        rows,
        columns=[
            "study_id",
            "center",
            "cr",
            "rfs_days",
            "relapse_day",
            "death_day",
            "last_followup_day",
        ],
    )
    return frame.astype({c: float for c in frame.columns[3:]})


# Small cells --------------------------------------------------------------------------------


def test_small_cells_are_1_to_4_zero_and_5_are_shown(settings):
    assert [suppress_small(n) for n in (0, 1, 4, 5, 12)] == [0, None, None, 5, 12]
    settings.SMALL_CELL_MIN = 11
    assert suppress_small(10) is None and suppress_small(11) == 11
    assert suppress_small(3, 3) == 3


# What became of the alerts -------------------------------------------------------------------


def test_alert_outcomes_per_rule_version_and_center():
    alerts = alerts_table(
        [
            ("P1", "alpha", "early_regeneration", "alpha-v1", 1, 30, "closed", 2.0,
             "anti_leukemic", ""),
            ("P2", "alpha", "early_regeneration", "alpha-v1", 1, 35, "closed", 10.0,
             "observation", ""),
            ("P3", "alpha", "early_regeneration", "alpha-v1", 1, 40, "acknowledged", 6.0, "", ""),
            ("P4", "alpha", "early_regeneration", "alpha-v1", 1, 21, "withdrawn", NAN, "",
             "evidence_deleted"),
            ("P5", "alpha", "early_regeneration", "alpha-v2", 1, 21, "open", NAN, "", ""),
            ("P6", "beta", "mrd_positive", "default-1", 1, 28, "withdrawn", NAN, "",
             "condition_no_longer_holds"),
        ]
    )  # fmt: skip
    rows = {(r["rule"], r["rule_version"], r["center"]): r for r in alert_outcomes(alerts)}
    assert list(rows) == [
        ("early_regeneration", "alpha-v1", "alpha"),
        ("early_regeneration", "alpha-v2", "alpha"),
        ("mrd_positive", "default-1", "beta"),
    ]
    v1 = rows[("early_regeneration", "alpha-v1", "alpha")]
    assert (v1["raised"], v1["open"], v1["acknowledged"], v1["withdrawn"], v1["closed"]) == (
        4, 0, 3, 1, 2
    )  # fmt: skip
    assert v1["withdrawn_by_reason"]["evidence_deleted"] == 1
    assert v1["closed_by_outcome"] == {
        "anti_leukemic": 1,
        "immunomodulatory": 0,
        "observation": 1,
        "not_relevant": 0,
    }
    assert v1["median_hours_to_acknowledgement"] == 6.0
    assert (
        rows[("early_regeneration", "alpha-v2", "alpha")]["median_hours_to_acknowledgement"] is None
    )
    mrd = rows[("mrd_positive", "default-1", "beta")]
    assert mrd["withdrawn_by_reason"]["condition_no_longer_holds"] == 1


def test_pooled_alert_outcomes_suppress_small_cells():
    alerts = alerts_table(
        [(f"P{i}", "alpha" if i % 2 else "beta", "early_regeneration", "v", 1, 30,
          "closed" if i < 6 else "open", 1.0 if i < 6 else NAN,
          "anti_leukemic" if i < 2 else "observation", "") for i in range(9)]
    )  # fmt: skip
    [row] = pooled_alert_outcomes(alerts)
    assert row["raised"] == 9
    # 3 open is a small cell; closed (6) and acknowledged (6) would give it back (9 - 6 - 0).
    assert (row["open"], row["closed"], row["acknowledged"], row["withdrawn"]) == (
        None, None, None, 0
    )  # fmt: skip
    assert row["closed_by_outcome"] == {
        "anti_leukemic": None,
        "immunomodulatory": 0,
        "observation": None,
        "not_relevant": 0,
    }
    assert row["median_hours_to_acknowledgement"] == 1.0  # 6 acknowledged
    # Without small cells nothing is hidden.
    [row] = pooled_alert_outcomes(alerts, minimum=2)
    assert (row["open"], row["closed"], row["closed_by_outcome"]["anti_leukemic"]) == (3, 6, 2)


def test_a_group_of_cells_is_suppressed_together():
    assert suppress_group({"a": 3, "b": 10, "c": 0}) == {"a": None, "b": None, "c": 0}
    assert suppress_group({"a": 5, "b": 10, "c": 0}) == {"a": 5, "b": 10, "c": 0}


# Early regeneration against relapse ---------------------------------------------------------


def _accuracy_case():
    frame = analysis_rows(
        [
            # alerted, relapsed on day 100 (within 180 and 365)
            ("A1", "alpha", 1, 100, 100, NAN, 400),
            # alerted, relapsed on day 300 (within 365 only)
            ("A2", "alpha", 1, 300, 300, NAN, 500),
            # alerted, relapse-free to day 400
            ("A3", "alpha", 1, 400, NAN, NAN, 400),
            # not alerted, relapsed on day 150
            ("N1", "alpha", 1, 150, 150, NAN, 150),
            # not alerted, relapse-free, followed to day 200: not evaluable at 365
            ("N2", "alpha", 1, 200, NAN, NAN, 200),
            # not alerted, died without relapse on day 90: "no relapse" at both horizons
            ("N3", "alpha", 1, 90, NAN, 90, 90),
            # relapsed on day 40: not in remission at the landmark
            ("X1", "alpha", 1, 40, 40, NAN, 300),
            # not in CR
            ("X2", "alpha", 0, NAN, NAN, NAN, 300),
        ]
    )
    alerts = alerts_table(
        [
            ("A1", "alpha", "early_regeneration", "v", 1, 30, "closed", 1.0, "observation", ""),
            ("A2", "alpha", "early_regeneration", "v", 1, 45, "open", NAN, "", ""),
            ("A3", "alpha", "early_regeneration", "v", 1, 21, "acknowledged", 1.0, "", ""),
            # withdrawn, after the landmark, or on a second infusion: not "alerted"
            ("N1", "alpha", "early_regeneration", "v", 1, 30, "withdrawn", NAN, "", "x"),
            ("N2", "alpha", "early_regeneration", "v", 1, 46, "open", NAN, "", ""),
            ("N3", "alpha", "early_regeneration", "v", 2, 20, "open", NAN, "", ""),
            ("X1", "alpha", "early_regeneration", "v", 1, 30, "open", NAN, "", ""),
        ]
    )
    return frame, alerts


def test_accuracy_counts_alerted_and_not_alerted_patients_in_remission_at_the_landmark():
    frame, alerts = _accuracy_case()
    result = early_regeneration_accuracy(frame, alerts, landmark_day=45)
    assert result["n_in_remission_at_landmark"] == 6 and result["n_alerted"] == 3
    at_180, at_365 = result["horizons"]
    assert at_180["cells"] == {
        "alerted_relapsed": 1,
        "alerted_no_relapse": 2,
        "not_alerted_relapsed": 1,
        "not_alerted_no_relapse": 2,  # N2 followed to day 200, N3 died without relapse
    }
    assert at_365["n_not_evaluable"] == 1  # N2
    assert at_365["cells"] == {
        "alerted_relapsed": 2,
        "alerted_no_relapse": 1,
        "not_alerted_relapsed": 1,
        "not_alerted_no_relapse": 1,
    }
    sens = at_365["sensitivity"]
    assert (sens["successes"], sens["n"]) == (2, 3)
    # Wilson by hand: z = qnorm(0.975)
    z, p, n = 1.959963984540054, 2 / 3, 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert sens["lower"] == pytest.approx(centre - half, abs=1e-12)
    assert (at_365["ppv"]["successes"], at_365["ppv"]["n"]) == (2, 3)
    assert (at_365["npv"]["successes"], at_365["npv"]["n"]) == (1, 2)
    assert (at_365["specificity"]["successes"], at_365["specificity"]["n"]) == (1, 2)
    # Lead time: A1 100 - 30 = 70, A2 300 - 45 = 255.
    lead = result["lead_time_days"]
    assert lead["n"] == 2 and lead["median"] == 162.5
    assert lead["q1"] == pytest.approx(np.percentile([70, 255], 25))


def test_pooled_accuracy_suppresses_cells_and_the_proportions_built_on_them():
    frame, alerts = _accuracy_case()
    pooled = early_regeneration_accuracy(frame, alerts, landmark_day=45, pooled=True)
    at_365 = pooled["horizons"][1]
    assert set(at_365["cells"].values()) == {None}
    assert [at_365[k] for k in ("sensitivity", "specificity", "ppv", "npv")] == [None] * 4
    assert pooled["n_alerted"] is None and pooled["lead_time_days"]["median"] is None
    assert pooled["n_in_remission_at_landmark"] == 6
    # With a minimum of 1 nothing is small: the pooled figures equal the center's.
    assert early_regeneration_accuracy(
        frame, alerts, landmark_day=45, pooled=True, minimum=1
    ) == early_regeneration_accuracy(frame, alerts, landmark_day=45)


# Calibration: the regeneration known by the landmark ----------------------------------------


def test_regeneration_needs_aplasia_first_and_confirmation_waits_for_the_repeat():
    course = [(7, 0.0, 0), (21, 12.0, 1), (28, 0.0, 0), (35, 3.0, 1), (50, 8.0, 1)]
    assert regeneration_known_day(course, threshold=0, confirmation=False) == (True, 21)
    # 21 is followed by an undetectable count: not confirmed; 35 is confirmed on day 50.
    assert regeneration_known_day(course, threshold=0, confirmation=True) == (True, 50)
    # At > 5 cells/µL the day-35 count (3) is aplasia; 8 on day 50 regenerates.
    assert regeneration_known_day(course, threshold=5, confirmation=False) == (True, 21)
    assert regeneration_known_day(course, threshold=12, confirmation=False) == (True, None)
    # B cells never cleared: no aplasia, no regeneration.
    assert regeneration_known_day([(7, 40.0, 1)], threshold=0, confirmation=False) == (False, None)
    # A % without an ALC (count unknown, B cells seen): detectable at > 0, unknown above.
    seen = [(7, 0.0, 0), (30, NAN, 1)]
    assert regeneration_known_day(seen, threshold=0, confirmation=False) == (True, 30)
    assert regeneration_known_day(seen, threshold=1, confirmation=False) == (True, None)


def test_calibration_groups_by_what_was_known_at_the_landmark():
    frame = pd.DataFrame(
        {
            "study_id": ["R1", "R2", "N1", "N2", "E1"],
            "cr": [1, 1, 1, 1, 1],
            "rfs_days": [100.0, 200.0, 300.0, 400.0, 30.0],
            "rfs_event": [1, 1, 0, 1, 1],
        }
    )
    bcells = pd.DataFrame(
        {
            "study_id": ["R1", "R1", "R2", "R2", "N1", "N2", "N2", "E1", "E1"],
            "day": [7, 30, 7, 50, 7, 7, 14, 7, 20],
            "sample": [1, 2, 1, 2, 1, 1, 2, 1, 2],
            "count_cells_per_ul": [0, 4, 0, 15, 0, 0, 0, 0, 9],
            "bcells_seen": [0, 1, 0, 1, 0, 0, 0, 0, 1],
        }
    )
    grid = calibration_grid(
        frame, bcells, windows=(45, 60), thresholds=(0, 5), confirmation=(False,)
    )
    cells = {(c["window_days"], c["threshold_cells_per_ul"]): c for c in grid["cells"]}
    # E1 relapsed on day 30: not at risk at either landmark.
    assert cells[(45, 0)]["n_at_landmark"] == 4
    assert (cells[(45, 0)]["n_regenerated"], cells[(45, 0)]["n_not_regenerated"]) == (1, 3)
    assert (cells[(60, 0)]["n_regenerated"], cells[(60, 0)]["n_not_regenerated"]) == (2, 2)
    assert (cells[(45, 5)]["n_regenerated"], cells[(60, 5)]["n_regenerated"]) == (0, 1)
    assert cells[(45, 5)]["hazard_ratio"] is None and cells[(45, 5)]["reason"]
    assert "overstates" in grid["caveat"]


# The page and its exports ---------------------------------------------------------------------


@pytest.fixture
def alerted_study(db, center, other_center, frozen_now):
    patients = [
        infused_patient(center=center, bcells={7: None, 30: 12}, relapse=120, followup=400),
        infused_patient(center=center, bcells={7: None, 60: 5}, followup=500),
        infused_patient(center=other_center, bcells={7: None, 21: 3}, death=300),
    ]
    for patient in patients:
        alerts_sync(patient=patient)
    return patients


@pytest.mark.django_db
def test_rule_page_needs_a_login_and_the_right(client, clinician, alerted_study):
    assert client.get(RULES).status_code == 302  # to the login page
    client.force_login(clinician)
    assert client.get(RULES).status_code == 403
    assert client.get("/dashboard/rules/alerts.csv").status_code == 403
    assert client.get("/dashboard/rules/bcells.csv").status_code == 403


@pytest.mark.django_db
def test_registry_staff_see_every_center_pooled_and_the_calibration(
    client, registry, alerted_study
):
    client.force_login(registry)
    assert client.post(RULES).status_code == 405
    response = client.get(RULES)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="pooled-alerts"' in html
    assert "Early B-cell regeneration" in html and "alpha" in html and "beta" in html
    assert 'data-testid="calibration-caveat"' in html and "overstates" in html
    # Figures are JSON data blocks drawn by a static script: no inline code.
    assert '<script id="calibration_unconfirmed" type="application/json">' in html
    assert "js/figures.js" in html
    inline = [s for s in html.split("<script")[1:] if "src=" not in s.split(">")[0]]
    assert all('type="application/json"' in s.split(">")[0] for s in inline)
    assert "suppressed" in html  # the pooled table of 3 patients has small cells
    assert 'data-testid="small-cells"' in html
    response = client.get("/dashboard/rules/alerts.csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content.decode().splitlines()[0] == ",".join(ALERT_COLUMNS)


@pytest.mark.django_db
def test_a_center_rule_administrator_sees_only_that_center(client, center, alerted_study):
    admin = UserFactory(username="alpha-rules", center=center)
    admin.user_permissions.add(Permission.objects.get(codename="view_ruleparameterset"))
    client.force_login(admin)
    html = client.get(RULES, {"center": "beta"}).content.decode()
    assert 'data-testid="pooled-alerts"' not in html
    assert "at center alpha" in html
    body = client.get("/dashboard/rules/bcells.csv", {"center": "beta"}).content.decode()
    frame = read_bcell_csv(io.StringIO(body))
    assert len(frame) == 4  # alpha's two patients, two samples each
    alerts = read_alerts_csv(
        io.StringIO(client.get("/dashboard/rules/alerts.csv").content.decode())
    )
    assert set(alerts["center"]) == {"alpha"}


@pytest.mark.django_db
def test_the_dashboard_links_the_rule_page_for_those_who_may_see_it(
    client, registry, clinician, frozen_now
):
    client.force_login(registry)
    assert 'data-testid="rules-link"' in client.get("/dashboard/").content.decode()
    client.force_login(clinician)
    assert 'data-testid="rules-link"' not in client.get("/dashboard/").content.decode()


@pytest.mark.django_db
def test_the_rule_page_of_an_empty_registry_says_so_without_failing(client, registry, frozen_now):
    client.force_login(registry)
    response = client.get(RULES, {"landmark": "60"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "No alerts yet." in html and "0 infused patients" in html
    # A landmark that is not offered falls back to the study's day 45, never a 500.
    assert client.get(RULES, {"landmark": "7; drop"}).status_code == 200
