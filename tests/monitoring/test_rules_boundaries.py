"""The rules at their clinical boundaries, on fixed dates (never today).

Each test names the clinical case. Days are relative to the first infusion on 2025-03-01.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from monitoring.engine import evaluate, window_statuses
from monitoring.params import RuleParams
from monitoring.rules import (
    aplasia_not_reached,
    bcell_count_due,
    car_copies_lost,
    early_regeneration,
    mrd_positive,
)
from monitoring.timeline import (
    EventPoint,
    InfusionPoint,
    ResponsePoint,
    ResultPoint,
    Timeline,
)
from patients.units import (
    ALC,
    BELOW_LOD,
    BM,
    BM_CAR_COPIES,
    BM_MRD_FLOW,
    BM_MRD_NGS,
    PB,
    PB_BCELL_ABS,
    PB_BCELL_PCT,
    UNDETECTABLE,
)

INFUSED = date(2025, 3, 1)
DEFAULTS = RuleParams()


def on(day: int) -> date:
    return INFUSED + timedelta(days=day)


class Course:
    """A patient's course written in days after the first infusion."""

    def __init__(self, *infusion_days: int) -> None:
        self.infusions = [
            InfusionPoint(id=n, date=on(day), number=n)
            for n, day in enumerate(infusion_days or (0,), start=1)
        ]
        self.results: list[ResultPoint] = []
        self.responses: list[ResponsePoint] = []
        self.events: list[EventPoint] = []

    def result(self, analyte: str, day: int, value, *, hour: int | None = None) -> Course:
        specimen = BM if analyte.startswith("bm_") else PB
        qualifier = value if value in (UNDETECTABLE, BELOW_LOD) else ""
        self.results.append(
            ResultPoint(
                id=len(self.results) + 1,
                analyte=analyte,
                specimen=specimen,
                collected_on=on(day),
                collected_at=None if hour is None else datetime.combine(on(day), _time(hour)),
                value=None if qualifier else Decimal(str(value)),
                qualifier=qualifier,
            )
        )
        return self

    def bcells(self, counts: dict[int, object]) -> Course:
        for day, value in counts.items():
            self.result(PB_BCELL_ABS, day, value)
        return self

    def percent(self, day: int, pct, alc=None, *, hour: int = 8, alc_hour: int | None = None):
        self.result(PB_BCELL_PCT, day, pct, hour=hour)
        if alc is not None:
            self.result(ALC, day, alc, hour=hour if alc_hour is None else alc_hour)
        return self

    def response(self, day: int, response: str) -> Course:
        self.responses.append(ResponsePoint(len(self.responses) + 1, on(day), response))
        return self

    def event(self, kind: str, day: int) -> Course:
        self.events.append(EventPoint(len(self.events) + 1, kind, on(day)))
        return self

    def timeline(self) -> Timeline:
        return Timeline(
            "CT-TEST",
            date(1990, 1, 1),
            tuple(self.infusions),
            tuple(self.results),
            tuple(self.responses),
            tuple(self.events),
        )


def _time(hour: int):
    return datetime(2000, 1, 1, hour).time()


def found(timeline: Timeline, params: RuleParams = DEFAULTS, as_of: date | None = None):
    return [(f.rule, f.infusion_id, f.day) for f in evaluate(timeline, params, as_of=as_of)]


# Early regeneration and late recovery ------------------------------------------------------


def test_detectable_count_on_day_45_is_early_regeneration_with_high_severity():
    t = Course().bcells({7: 0, 30: 0, 45: 12}).timeline()
    [finding] = evaluate(t, DEFAULTS)
    assert (finding.rule, finding.day, finding.severity) == ("early_regeneration", 45, "high")
    assert finding.details["regeneration_day"] == 45
    assert [(e.result_id, e.role) for e in finding.evidence] == [
        (2, "aplasia"),
        (3, "regeneration"),
    ]
    text = finding.details["recommendation"]
    assert "relapse risk is high" in text
    assert "Consider prompt pre-emptive anti-leukemic therapy" in text
    assert "chemotherapy, a targeted agent, or a second CAR-T" in text
    assert "immunomodulatory therapy (interferon, interleukin-2) gave inferior" in text
    assert "to consider, not an order" in finding.details["advisory"]
    assert "p < 0.01" in finding.details["study_finding"]
    assert "above 0 cells/µL" in finding.details["definition"]
    assert finding.details["parameters"]["version"] == "default-1"


def test_detectable_count_on_day_46_is_late_recovery_not_early():
    t = Course().bcells({7: 0, 46: 12}).timeline()
    [finding] = evaluate(t, DEFAULTS)
    assert (finding.rule, finding.day, finding.severity) == ("late_recovery", 46, "info")
    assert "not associated with relapse" in finding.details["recommendation"]


def test_only_the_first_regeneration_counts_so_early_excludes_late():
    t = Course().bcells({7: 0, 20: 5, 30: 0, 60: 9}).timeline()
    assert found(t) == [("early_regeneration", 1, 20)]


@pytest.mark.parametrize(
    ("threshold", "at_threshold", "just_above"),
    [(Decimal(0), "0", "0.01"), (Decimal(100), "100", "100.01")],
)
def test_a_count_equal_to_the_threshold_is_not_detectable_just_above_is(
    threshold, at_threshold, just_above
):
    params = RuleParams(bcell_threshold=threshold, version="test")
    at = Course().bcells({7: 0, 14: at_threshold}).timeline()
    above = Course().bcells({7: 0, 14: just_above}).timeline()
    assert found(at, params) == []
    assert found(above, params) == [("early_regeneration", 1, 14)]


def test_under_a_100_cell_threshold_a_low_count_is_aplasia():
    params = RuleParams(bcell_threshold=Decimal(100), version="test")
    t = Course().bcells({7: 40, 21: 150}).timeline()
    assert found(t, params) == [("early_regeneration", 1, 21)]


def test_a_detectable_count_before_aplasia_does_not_alert():
    # B cells not yet cleared by the CAR-T cells are not a regeneration.
    assert found(Course().bcells({3: 40, 10: 0}).timeline()) == []
    [finding] = evaluate(Course().bcells({3: 40, 10: 0, 20: 5}).timeline(), DEFAULTS)
    assert (finding.rule, finding.day, finding.details["aplasia_day"]) == (
        "early_regeneration",
        20,
        10,
    )


def test_baseline_results_never_alert_and_never_count_as_aplasia():
    t = Course().bcells({-10: 0, -3: 50, -1: 0, 5: 12}).timeline()
    assert found(t) == []


def test_day_0_count_is_not_post_infusion_aplasia():
    assert found(Course().bcells({0: 0, 5: 12}).timeline()) == []


def test_a_second_infusion_opens_a_new_window_with_day_0_again():
    t = Course(0, 60).bcells({7: 0, 60: 30, 62: 0, 70: 9}).timeline()
    findings = evaluate(t, DEFAULTS)
    assert [(f.rule, f.infusion_id, f.day) for f in findings] == [("early_regeneration", 2, 10)]
    assert findings[0].details["infusion_number"] == 2
    assert [e.day for e in findings[0].evidence] == [2, 10]


def test_regeneration_on_the_next_infusion_date_belongs_to_the_new_window():
    # Day 40 of infusion 1 is day 0 of infusion 2: not early regeneration after infusion 1.
    t = Course(0, 40).bcells({7: 0, 40: 12}).timeline()
    assert found(t) == []


# Eligibility --------------------------------------------------------------------------------


def test_a_recorded_relapse_stops_the_rules_but_keeps_what_was_found_before_it():
    # Regeneration on day 30, relapse on day 90: the alert raised before the relapse stands
    # (the relapse proved it right); nothing counted on or after the relapse day can raise one.
    course = Course().bcells({7: 0, 30: 12})
    assert found(course.timeline()) == [("early_regeneration", 1, 30)]
    t = course.event("relapse", 90).timeline()
    assert found(t) == [("early_regeneration", 1, 30)]
    status = window_statuses(t)[0]
    assert status.eligible and status.ended_by == "relapse recorded on 2025-05-30"
    assert status.monitored_until == on(89)


def test_a_detectable_count_on_or_after_the_relapse_day_never_alerts():
    # The blasts of a relapse are not B-cell regeneration.
    t = Course().bcells({7: 0, 30: 12}).event("relapse", 30).timeline()
    assert found(t) == []
    t = Course().bcells({7: 0, 30: 12}).event("relapse", 29).timeline()
    assert found(t) == []


def test_a_recorded_death_stops_the_rules():
    t = Course().bcells({7: 0, 30: 12}).event("death", 25).timeline()
    assert found(t) == []
    assert window_statuses(t)[0].ended_by == "death recorded on 2025-03-26"
    # A finding made while the patient was alive stands.
    t = Course().bcells({7: 0, 30: 12}).event("death", 200).timeline()
    assert found(t) == [("early_regeneration", 1, 30)]


def test_no_count_due_reminder_once_a_relapse_is_recorded():
    course = Course().bcells({7: 0, 14: 0})
    assert ("bcell_count_due", 1, 30) in found(course.timeline(), as_of=on(30))
    t = course.event("relapse", 20).timeline()
    assert [f for f in found(t, as_of=on(30)) if f[0] == "bcell_count_due"] == []


def test_a_relapse_that_prompted_a_second_infusion_does_not_stop_its_window():
    t = Course(0, 60).bcells({7: 0, 62: 0, 70: 9}).event("relapse", 60).timeline()
    assert found(t) == [("early_regeneration", 2, 10)]


def test_no_rules_when_the_first_response_is_not_cr_or_cri():
    course = Course().bcells({7: 0, 30: 12})
    for response in ("PR", "NR", "PD"):
        t = Course().bcells({7: 0, 30: 12}).response(28, response).timeline()
        assert found(t) == [], response
        reason = window_statuses(t)[0].reason
        assert reason == f"first response {response} on 2025-03-29 (not CR/CRi)"
    assert found(course.response(28, "CRi").timeline()) == [("early_regeneration", 1, 30)]


def test_the_first_assessment_decides_and_ne_is_no_assessment():
    # CLINICAL.md section 4: a window whose first assessment is PR/NR/PD has no findings, even if
    # a CR follows; NE (not evaluable) is no assessment at all.
    t = Course().bcells({7: 0, 30: 12}).response(14, "PR").response(28, "CR").timeline()
    assert found(t) == []
    t = Course().bcells({7: 0, 30: 12}).response(14, "NE").response(28, "CR").timeline()
    assert found(t) == [("early_regeneration", 1, 30)]
    t = Course().bcells({7: 0, 30: 12}).response(28, "NR").response(35, "NE").timeline()
    assert found(t) == []


@pytest.mark.parametrize("response", ["PR", "NR", "PD"])
def test_a_later_pr_nr_or_pd_after_cr_ends_the_window_on_its_date(response):
    # Regeneration on day 35 after a CR on day 28; remission lost on day 60. The alert raised
    # before stands (the course proved it right), it is not withdrawn.
    t = Course().bcells({7: 0, 35: 12}).response(28, "CR").response(60, response).timeline()
    assert found(t) == [("early_regeneration", 1, 35)]
    status = window_statuses(t)[0]
    assert status.eligible and status.monitored_until == on(59)
    assert status.ended_by == f"response {response} on 2025-04-30 after CR"


def test_a_count_on_the_day_of_a_later_pr_raises_nothing_the_day_before_stands():
    base = Course().bcells({7: 0, 35: 12}).response(28, "CRi")
    # PR on the day of the detectable count: data on or after the PR's date raise nothing.
    t = Course().bcells({7: 0, 35: 12}).response(28, "CRi").response(35, "PR").timeline()
    assert found(t) == []
    # PR the day after the finding: the finding stands.
    t = base.response(36, "PR").timeline()
    assert found(t) == [("early_regeneration", 1, 35)]
    assert window_statuses(t)[0].ended_by == "response PR on 2025-04-06 after CRi"


def test_a_later_pr_stops_the_count_due_reminder_and_later_counts():
    course = Course().bcells({7: 0, 14: 0}).response(12, "CR")
    assert ("bcell_count_due", 1, 30) in found(course.timeline(), as_of=on(30))
    t = course.response(20, "PD").bcells({25: 40}).timeline()
    assert found(t, as_of=on(30)) == []


def test_a_cr_after_a_later_pr_does_not_reopen_the_window():
    t = (
        Course()
        .bcells({7: 0, 40: 12})
        .response(28, "CR")
        .response(30, "PR")
        .response(35, "CR")
        .timeline()
    )
    assert found(t) == []
    assert window_statuses(t)[0].ended_by == "response PR on 2025-03-31 after CR"


def test_allogeneic_hsct_ends_the_window_on_its_date():
    # Donor B cells engrafting after a transplant are not CAR-T failure.
    t = Course().bcells({7: 0, 30: 12}).event("hsct", 30).timeline()
    assert found(t) == []
    assert window_statuses(t)[0].ended_by == "allogeneic HSCT recorded on 2025-03-31"
    assert window_statuses(t)[0].monitored_until == on(29)
    # HSCT the day after the finding: the finding stands.
    t = Course().bcells({7: 0, 30: 12}).event("hsct", 31).timeline()
    assert found(t) == [("early_regeneration", 1, 30)]
    # Counts after the transplant raise nothing, and the reminder stops.
    t = Course().bcells({7: 0, 14: 0, 40: 300}).event("hsct", 20).timeline()
    assert found(t) == []
    assert found(t, as_of=on(30)) == []


def test_an_hsct_before_the_infusion_does_not_stop_its_window():
    # Many patients with relapsed/refractory ALL had a transplant before CAR-T.
    t = Course(0).bcells({7: 0, 30: 12}).event("hsct", -200).timeline()
    assert found(t) == [("early_regeneration", 1, 30)]
    # An HSCT between two infusions ends the first window only.
    t = Course(0, 100).bcells({7: 0, 107: 0, 130: 9}).event("hsct", 60).timeline()
    assert found(t) == [("early_regeneration", 2, 30)]
    assert [s.ended_by for s in window_statuses(t)] == [
        "allogeneic HSCT recorded on 2025-04-30",
        "",
    ]


def test_nothing_dated_after_as_of_is_considered():
    t = Course().bcells({7: 0, 30: 12}).timeline()
    assert early_regeneration(t, DEFAULTS, as_of=on(29)) == []
    assert found(t, as_of=on(30)) == [("early_regeneration", 1, 30)]


# Aplasia not reached --------------------------------------------------------------------------


def test_no_undetectable_count_by_day_28_warns_once_day_28_has_passed():
    t = Course().bcells({7: 5, 14: 8, 28: 3}).timeline()
    assert found(t, as_of=on(28)) == []
    [finding] = evaluate(t, DEFAULTS, as_of=on(29))
    assert (finding.rule, finding.day, finding.severity) == ("aplasia_not_reached", 28, "warning")
    assert [e.role for e in finding.evidence] == ["count"] * 3


def test_an_undetectable_count_on_day_28_counts_one_on_day_29_does_not():
    on_28 = Course().bcells({7: 5, 28: 0}).timeline()
    on_29 = Course().bcells({7: 5, 29: 0}).timeline()
    assert aplasia_not_reached(on_28, DEFAULTS, as_of=on(40)) == []
    assert [f.day for f in aplasia_not_reached(on_29, DEFAULTS, as_of=on(40))] == [28]


def test_aplasia_not_reached_without_a_clock_waits_for_later_data():
    assert found(Course().bcells({7: 5}).timeline()) == []
    assert found(Course().bcells({7: 5, 29: 6}).timeline()) == [("aplasia_not_reached", 1, 28)]


def test_aplasia_not_reached_with_no_counts_at_all():
    t = Course().timeline()
    assert aplasia_not_reached(t, DEFAULTS, as_of=on(29))[0].evidence == ()


def test_a_window_closed_by_the_next_infusion_before_day_28_is_not_judged():
    t = Course(0, 20).bcells({7: 5, 27: 0}).timeline()
    assert aplasia_not_reached(t, DEFAULTS, as_of=on(60)) == []


def test_qualifiers_count_as_not_detectable():
    for qualifier in (UNDETECTABLE, BELOW_LOD):
        t = Course().bcells({7: qualifier, 30: 12}).timeline()
        assert found(t, as_of=on(31)) == [("early_regeneration", 1, 30)], qualifier


# B-cell count due ----------------------------------------------------------------------------


def test_count_due_when_the_last_count_is_older_than_7_days():
    t = Course().bcells({10: 0}).timeline()
    assert bcell_count_due(t, DEFAULTS, as_of=on(17)) == []
    [finding] = bcell_count_due(t, DEFAULTS, as_of=on(18))
    assert (finding.rule, finding.day, finding.severity) == ("bcell_count_due", 18, "reminder")
    assert finding.details["days_since_last_count"] == 8
    assert [(e.result_id, e.role) for e in finding.evidence] == [(1, "last_count")]


def test_count_due_with_no_count_runs_from_the_infusion():
    t = Course().timeline()
    assert bcell_count_due(t, DEFAULTS, as_of=on(7)) == []
    assert [f.day for f in bcell_count_due(t, DEFAULTS, as_of=on(8))] == [8]


def test_no_count_due_once_the_window_has_passed_or_without_a_clock():
    t = Course().bcells({7: 0, 20: 0}).timeline()
    assert [f.day for f in bcell_count_due(t, DEFAULTS, as_of=on(45))] == [45]
    assert bcell_count_due(t, DEFAULTS, as_of=on(46)) == []
    assert bcell_count_due(t, DEFAULTS) == []


def test_no_count_due_once_regeneration_is_found_but_due_while_awaiting_confirmation():
    t = Course().bcells({7: 0, 20: 5}).timeline()
    assert bcell_count_due(t, DEFAULTS, as_of=on(30)) == []
    confirm = RuleParams(require_confirmation=True, version="test")
    assert [f.rule for f in bcell_count_due(t, confirm, as_of=on(30))] == ["bcell_count_due"]


def test_count_due_applies_to_the_current_infusion_only():
    t = Course(0, 50).bcells({7: 0}).timeline()
    assert [(f.infusion_id, f.day) for f in bcell_count_due(t, DEFAULTS, as_of=on(59))] == [(2, 9)]


# Bone marrow ---------------------------------------------------------------------------------


def test_mrd_flow_at_0_01_percent_is_positive_0_0099_is_not():
    positive = Course().result(BM_MRD_FLOW, 28, "0.01").timeline()
    negative = Course().result(BM_MRD_FLOW, 28, "0.0099").timeline()
    [finding] = mrd_positive(positive, DEFAULTS)
    assert (finding.rule, finding.day, finding.severity) == ("mrd_positive", 28, "info")
    assert "not associated with relapse" in finding.details["recommendation"]
    assert mrd_positive(negative, DEFAULTS) == []


def test_mrd_ngs_at_1e_minus_4_is_positive():
    assert [
        f.day for f in mrd_positive(Course().result(BM_MRD_NGS, 30, "0.0001").timeline(), DEFAULTS)
    ] == [30]
    assert mrd_positive(Course().result(BM_MRD_NGS, 30, "0.000099").timeline(), DEFAULTS) == []
    assert mrd_positive(Course().result(BM_MRD_NGS, 30, UNDETECTABLE).timeline(), DEFAULTS) == []


def test_baseline_mrd_is_not_a_finding():
    assert mrd_positive(Course().result(BM_MRD_FLOW, -7, "45").timeline(), DEFAULTS) == []


def test_car_copies_undetectable_after_detectable_is_a_loss():
    t = (
        Course()
        .result(BM_CAR_COPIES, 14, UNDETECTABLE)
        .result(BM_CAR_COPIES, 28, "15200")
        .result(BM_CAR_COPIES, 90, BELOW_LOD)
        .result(BM_CAR_COPIES, 120, "0")
        .timeline()
    )
    [finding] = car_copies_lost(t, DEFAULTS)
    assert (finding.rule, finding.day, finding.severity) == ("car_copies_lost", 90, "info")
    assert [(e.result_id, e.role) for e in finding.evidence] == [
        (2, "car_detectable"),
        (3, "car_loss"),
    ]
    never = Course().result(BM_CAR_COPIES, 14, "0").result(BM_CAR_COPIES, 28, UNDETECTABLE)
    assert car_copies_lost(never.timeline(), DEFAULTS) == []


# % of lymphocytes and the ALC of the same sample -------------------------------------------


def test_percent_with_the_alc_of_the_same_sample_gives_an_absolute_count():
    # 1.5 % of 800 lymphocytes/µL = 12 B cells/µL.
    course = Course().bcells({7: 0}).percent(21, "1.5", alc="800")
    [finding] = early_regeneration(course.timeline(), RuleParams(bcell_threshold=10, version="t"))
    assert finding.details["regeneration_count_cells_per_ul"] == "12"
    assert [e.result_id for e in finding.evidence if e.role == "regeneration"] == [2, 3]
    assert early_regeneration(course.timeline(), RuleParams(bcell_threshold=12, version="t")) == []


def test_an_alc_from_another_sample_is_not_paired():
    course = Course().bcells({7: 0}).percent(21, "1.5", alc="800", hour=8, alc_hour=9)
    assert early_regeneration(course.timeline(), RuleParams(bcell_threshold=10, version="t")) == []
    # Under the study's "> 0" definition any B cells seen are detectable, ALC or not.
    assert [f.day for f in early_regeneration(course.timeline(), DEFAULTS)] == [21]


def test_zero_percent_is_aplasia_without_an_alc():
    t = Course().percent(7, "0").bcells({21: 3}).timeline()
    assert found(t) == [("early_regeneration", 1, 21)]


# Confirmation mode and the % threshold ------------------------------------------------------

CONFIRM = RuleParams(require_confirmation=True, version="confirm")


def test_confirmation_alerts_on_the_second_sample_with_the_first_as_regeneration_day():
    [finding] = evaluate(Course().bcells({7: 0, 30: 5, 37: 6}).timeline(), CONFIRM)
    assert (finding.rule, finding.day) == ("early_regeneration", 37)
    assert finding.details["regeneration_day"] == 30
    assert finding.details["confirmation_day"] == 37
    assert [e.role for e in finding.evidence] == ["aplasia", "regeneration", "confirmation"]
    assert "second consecutive detectable sample" in finding.details["definition"]


def test_confirmation_of_a_day_45_regeneration_after_the_window_is_still_early():
    t = Course().bcells({7: 0, 45: 5, 52: 6}).timeline()
    assert found(t, CONFIRM) == [("early_regeneration", 1, 52)]


def test_a_detectable_sample_followed_by_an_undetectable_one_does_not_confirm():
    assert found(Course().bcells({7: 0, 30: 5, 37: 0}).timeline(), CONFIRM) == []
    assert found(Course().bcells({7: 0, 30: 5}).timeline(), CONFIRM) == []
    later = Course().bcells({7: 0, 30: 5, 37: 0, 50: 4, 57: 3}).timeline()
    [finding] = evaluate(later, CONFIRM)
    assert (finding.rule, finding.day, finding.details["regeneration_day"]) == (
        "late_recovery",
        57,
        50,
    )


def test_optional_percent_threshold_makes_a_count_detectable():
    params = RuleParams(bcell_threshold=100, bcell_pct_threshold="1", version="tisa")
    above = Course().bcells({7: 0}).percent(21, "1.01", alc="500").timeline()  # 5 cells/µL
    at = Course().bcells({7: 0}).percent(21, "1", alc="500").timeline()
    assert found(above, params) == [("early_regeneration", 1, 21)]
    assert found(at, params) == []
    assert "or above 1 % of lymphocytes" in params.definition_text()


# One finding per (infusion, rule), in a fixed order -----------------------------------------


def test_findings_are_unique_per_infusion_and_rule_and_ordered():
    t = (
        Course(0, 100)
        .bcells({7: 5, 29: 6, 40: 0, 50: 7, 60: 8, 107: 0, 120: 3})
        .result(BM_MRD_FLOW, 28, "0.5")
        .result(BM_MRD_FLOW, 35, "1.5")
        .timeline()
    )
    assert found(t) == [
        ("aplasia_not_reached", 1, 28),
        ("late_recovery", 1, 50),
        ("mrd_positive", 1, 28),
        ("early_regeneration", 2, 20),
    ]
