"""Every text a finding carries, in one place (CLINICAL.md sections 1 and 4).

Each rule has a title (safe for e-mail: no names, no lab values), a recommendation and the study
finding it rests on. Placeholders in braces are filled from the rule's parameters and the finding.
The wording is reviewed clinically: change it here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

EARLY_REGENERATION = "early_regeneration"
LATE_RECOVERY = "late_recovery"
APLASIA_NOT_REACHED = "aplasia_not_reached"
BCELL_COUNT_DUE = "bcell_count_due"
MRD_POSITIVE = "mrd_positive"
CAR_COPIES_LOST = "car_copies_lost"

# Every alert is decision support for the treating clinician (CLINICAL.md section 4).
ADVISORY = (
    "This is decision support for the treating clinician to consider, not an order. Review the "
    "values and their days, the definition and the parameters it was evaluated with."
)

REFERENCE_COHORT = (
    "Reference cohort: 55 patients with relapsed/refractory B-ALL treated with CD19 CAR-T cells; "
    "45 reached complete remission."
)


@dataclass(frozen=True)
class RuleText:
    title: str
    recommendation: str
    study_finding: str


RULE_TEXTS: dict[str, RuleText] = {
    EARLY_REGENERATION: RuleText(
        title="Early B-cell regeneration",
        recommendation=(
            "Peripheral-blood B cells reappeared on day {regeneration_day} after infusion, within "
            "the {window_days}-day window and after B-cell aplasia: relapse risk is high. Consider "
            "prompt pre-emptive anti-leukemic therapy (chemotherapy, a targeted agent, or a second "
            "CAR-T infusion). In the reference cohort, immunomodulatory therapy (interferon, "
            "interleukin-2) gave inferior relapse-free survival."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} Clinical relapse was strongly associated (p < 0.01) with early "
            "B-cell regeneration, PB B cells reappearing within 45 days after the infusion; "
            "regeneration after day 45 was not. When early regeneration occurred, pre-emptive "
            "anti-leukemic therapy gave significantly better relapse-free survival than "
            "immunomodulatory therapy (p < 0.05)."
        ),
    ),
    LATE_RECOVERY: RuleText(
        title="Late B-cell recovery",
        recommendation=(
            "Peripheral-blood B cells reappeared on day {regeneration_day} after infusion, after "
            "the {window_days}-day window: loss of B-cell aplasia. In the reference cohort this "
            "was not associated with relapse. Continue monitoring."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} B-cell regeneration after day 45 was not associated with "
            "relapse; only regeneration within 45 days was (p < 0.01)."
        ),
    ),
    APLASIA_NOT_REACHED: RuleText(
        title="B-cell aplasia not documented",
        recommendation=(
            "No undetectable PB B-cell count has been recorded by day {aplasia_by_day} after "
            "infusion: B-cell aplasia has not been documented. The early-regeneration rule can "
            "only apply once aplasia is documented."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} Every patient in complete remission had undetectable PB B cells "
            "(0/µL) after CAR-T (B-cell aplasia)."
        ),
    ),
    BCELL_COUNT_DUE: RuleText(
        title="PB B-cell count due",
        recommendation=(
            "A PB B-cell count is due: the last one is {days_since_last_count} days old (the "
            "interval is {count_due_days} days inside the {window_days}-day window). The "
            "early-regeneration rule depends on frequent counts."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} B-cell regeneration within 45 days after the infusion predicted "
            "relapse (p < 0.01), and prompt anti-leukemic therapy when it was seen prolonged "
            "relapse-free survival; it can only be seen with frequent counts."
        ),
    ),
    MRD_POSITIVE: RuleText(
        title="Bone-marrow MRD positive",
        recommendation=(
            "BM MRD at or above the threshold ({threshold}) on day {day} after infusion. In the "
            "reference cohort, BM MRD positivity was not associated with relapse at the same time "
            "point. Interpret together with the PB B-cell course."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} Relapse was not associated with BM MRD positivity measured at "
            "the same time point; it was associated with early B-cell regeneration."
        ),
    ),
    CAR_COPIES_LOST: RuleText(
        title="BM CAR transgene copies lost",
        recommendation=(
            "BM CAR transgene copies became undetectable on day {day} after infusion, having been "
            "detectable on day {detectable_day}. In the reference cohort, loss of CAR copies was "
            "likewise not associated with relapse at the same time point."
        ),
        study_finding=(
            f"{REFERENCE_COHORT} Relapse was not associated with loss of BM CAR transgene copies "
            "measured at the same time point; it was associated with early B-cell regeneration."
        ),
    ),
}


# When the course ended after the finding (relapse or death), the original recommendation is
# history, not current advice: what is left to do is to record the outcome of the alert.
COURSE_ENDED_ADVICE = {
    "relapsed": (
        "The patient relapsed on {date}, after this finding: pre-emptive therapy is no longer the "
        "question. Close the alert with what was done in response (the outcome), so the rule's "
        "usefulness can be measured."
    ),
    "died": (
        "The patient died on {date}, after this finding. Close the alert with what was done in "
        "response (the outcome), so the rule's usefulness can be measured."
    ),
}
