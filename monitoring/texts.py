"""Every text a finding carries, in one place (CLINICAL.md sections 1 and 4).

Each rule has a title (safe for e-mail: no names, no lab values), a recommendation and the study
finding it rests on. Placeholders in braces are filled from the rule's parameters and the finding.
The wording is reviewed clinically: change it here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_noop, ngettext, override
from django.utils.translation import gettext_lazy as _

EARLY_REGENERATION = "early_regeneration"
LATE_RECOVERY = "late_recovery"
APLASIA_NOT_REACHED = "aplasia_not_reached"
BCELL_COUNT_DUE = "bcell_count_due"
MRD_POSITIVE = "mrd_positive"
CAR_COPIES_LOST = "car_copies_lost"

# Every alert is decision support for the treating clinician (CLINICAL.md section 4).
ADVISORY = _(
    "This is decision support for the treating clinician to consider, not an order. Review the "
    "values and their days, the definition and the parameters it was evaluated with."
)

REFERENCE_COHORT = _(
    "Reference cohort: 55 patients with relapsed/refractory B-ALL treated with CD19 CAR-T cells; "
    "45 reached complete remission."
)


@dataclass(frozen=True)
class RuleText:
    # Lazy: each is read in the active language (`english` gives the stored wording).
    title: Promise
    recommendation: Promise
    study_finding: Promise


def _finding(text: Promise) -> Promise:
    """The study finding: the reference cohort, then the rule's own sentences."""
    return format_lazy("{} {}", REFERENCE_COHORT, text)


RULE_TEXTS: dict[str, RuleText] = {
    EARLY_REGENERATION: RuleText(
        title=_("Early B-cell regeneration"),
        recommendation=_(
            "Peripheral-blood B cells reappeared on day {regeneration_day} after infusion, within "
            "the {window_days}-day window and after B-cell aplasia: relapse risk is high. Consider "
            "prompt pre-emptive anti-leukemic therapy (chemotherapy, a targeted agent, or a second "
            "CAR-T infusion). In the reference cohort, immunomodulatory therapy (interferon, "
            "interleukin-2) gave inferior relapse-free survival."
        ),
        study_finding=_finding(
            _(
                "Clinical relapse was strongly associated (p < 0.01) with early "
                "B-cell regeneration, PB B cells reappearing within 45 days after the infusion; "
                "regeneration after day 45 was not. When early regeneration occurred, pre-emptive "
                "anti-leukemic therapy gave significantly better relapse-free survival than "
                "immunomodulatory therapy (p < 0.05)."
            )
        ),
    ),
    LATE_RECOVERY: RuleText(
        title=_("Late B-cell recovery"),
        recommendation=_(
            "Peripheral-blood B cells reappeared on day {regeneration_day} after infusion, after "
            "the {window_days}-day window: loss of B-cell aplasia. In the reference cohort this "
            "was not associated with relapse. Continue monitoring."
        ),
        study_finding=_finding(
            _(
                "B-cell regeneration after day 45 was not associated with "
                "relapse; only regeneration within 45 days was (p < 0.01)."
            )
        ),
    ),
    APLASIA_NOT_REACHED: RuleText(
        title=_("B-cell aplasia not documented"),
        recommendation=_(
            "No undetectable PB B-cell count has been recorded by day {aplasia_by_day} after "
            "infusion: B-cell aplasia has not been documented. The early-regeneration rule can "
            "only apply once aplasia is documented."
        ),
        study_finding=_finding(
            _(
                "Every patient in complete remission had undetectable PB B cells "
                "(0/µL) after CAR-T (B-cell aplasia)."
            )
        ),
    ),
    BCELL_COUNT_DUE: RuleText(
        title=_("PB B-cell count due"),
        recommendation=_(
            "A PB B-cell count is due: the last one is {days_since_last_count} days old (the "
            "interval is {count_due_days} days inside the {window_days}-day window). The "
            "early-regeneration rule depends on frequent counts."
        ),
        study_finding=_finding(
            _(
                "B-cell regeneration within 45 days after the infusion predicted "
                "relapse (p < 0.01), and prompt anti-leukemic therapy when it was seen prolonged "
                "relapse-free survival; it can only be seen with frequent counts."
            )
        ),
    ),
    MRD_POSITIVE: RuleText(
        title=_("Bone-marrow MRD positive"),
        recommendation=_(
            "BM MRD at or above the threshold ({threshold}) on day {day} after infusion. In the "
            "reference cohort, BM MRD positivity was not associated with relapse at the same time "
            "point. Interpret together with the PB B-cell course."
        ),
        study_finding=_finding(
            _(
                "Relapse was not associated with BM MRD positivity measured at "
                "the same time point; it was associated with early B-cell regeneration."
            )
        ),
    ),
    CAR_COPIES_LOST: RuleText(
        title=_("BM CAR transgene copies lost"),
        recommendation=_(
            "BM CAR transgene copies became undetectable on day {day} after infusion, having been "
            "detectable on day {detectable_day}. In the reference cohort, loss of CAR copies was "
            "likewise not associated with relapse at the same time point."
        ),
        study_finding=_finding(
            _(
                "Relapse was not associated with loss of BM CAR transgene copies "
                "measured at the same time point; it was associated with early B-cell regeneration."
            )
        ),
    ),
}


# When the course ended after the finding (relapse or death), the original recommendation is
# history, not current advice: what is left to do is to record the outcome of the alert.
COURSE_ENDED_ADVICE = {
    "relapsed": _(
        "The patient relapsed on {date}, after this finding: pre-emptive therapy is no longer the "
        "question. Close the alert with what was done in response (the outcome), so the rule's "
        "usefulness can be measured."
    ),
    "died": _(
        "The patient died on {date}, after this finding. Close the alert with what was done in "
        "response (the outcome), so the rule's usefulness can be measured."
    ),
}


def english(text: Any) -> str:
    """A text as it is stored: the English wording, whatever language is active."""
    with override(None):
        return str(text)


def rule_text(rule: str) -> RuleText | None:
    return RULE_TEXTS.get(rule)


def threshold_words(method: str, parameters: dict) -> str:
    """The BM MRD threshold that was met, in the active language (numbers as they are)."""
    if method == "flow":
        return gettext("flow cytometry ≥ %(threshold)s %% of cells") % {
            "threshold": parameters.get("mrd_flow_threshold_pct")
        }
    return gettext("NGS ≥ %(threshold)s (fraction of cells)") % {
        "threshold": parameters.get("mrd_ngs_threshold")
    }


def lateness(late_days: int | None) -> str:
    """ "collected 8 days before it arrived", or "" for a result that came in time."""
    if not late_days:
        return ""
    return ngettext(
        "collected %(days)s day before it arrived",
        "collected %(days)s days before it arrived",
        late_days,
    ) % {"days": late_days}


def english_of(function, *args, **kwargs) -> str:
    """What ``function`` says in English (as stored), whatever language is active."""
    with override(None):
        return str(function(*args, **kwargs))


# Reasons and notes the code stores with an alert, its events and its escalations: stored in
# English (filled with these templates), shown in the reader's language by `stored_display`.
HISTORY_DECLARED = gettext_noop("Arrived in an import declared as history.")
HISTORY_MONITORING_ENDED = gettext_noop(
    "The course had answered it when it arrived: monitoring ended (%(ended_by)s)."
)
HISTORY_THERAPY_STARTED = gettext_noop(
    "The course had answered it when it arrived: pre-emptive therapy started on %(date)s."
)
HISTORY_NEWER_INFUSION = gettext_noop(
    "The course had answered it when it arrived: a newer infusion on %(date)s opened a newer "
    "window."
)
HISTORY_STALE = gettext_noop(
    "Its day (%(date)s) is %(days)s days before it arrived, more than the %(limit)s after which "
    "a finding is history."
)
RAISED_REASON = gettext_noop("Raised by the rules engine.")
RAISED_HISTORY_REASON = gettext_noop("Raised from historical data (not notified).")
REOPENED_HISTORY_REASON = gettext_noop(
    "The rule's condition holds again (historical data: not notified)."
)
REOPENED_REASON = gettext_noop("The rule's condition holds again.")
WITHDRAWN_INFUSION_DELETED = gettext_noop("The infusion this alert was about was deleted.")
WITHDRAWN_RESULT_DELETED = gettext_noop(
    "A result this alert rested on was deleted: %(analyte)s of day %(day)s."
)
WITHDRAWN_NO_LONGER_HOLDS = gettext_noop(
    "Re-evaluated after a change to the patient's data (a lab corrected, an infusion date fixed, "
    "a response or event recorded): the rule's condition no longer holds."
)
ESCALATED_OTHERS = gettext_noop(
    "Not acknowledged: sent to %(count)s of the center's other clinicians."
)
ESCALATED_LEADS = gettext_noop("Not acknowledged: sent to %(count)s of the center's leads.")
ESCALATED_OTHERS_NOBODY = gettext_noop(
    "Not acknowledged, and the center's other clinicians are nobody: name some in the admin."
)
ESCALATED_LEADS_NOBODY = gettext_noop(
    "Not acknowledged, and the center's leads are nobody: name some in the admin."
)
STORED_TEMPLATES = (
    HISTORY_DECLARED,
    HISTORY_MONITORING_ENDED,
    HISTORY_THERAPY_STARTED,
    HISTORY_NEWER_INFUSION,
    HISTORY_STALE,
    RAISED_REASON,
    RAISED_HISTORY_REASON,
    REOPENED_HISTORY_REASON,
    REOPENED_REASON,
    WITHDRAWN_INFUSION_DELETED,
    WITHDRAWN_RESULT_DELETED,
    WITHDRAWN_NO_LONGER_HOLDS,
    ESCALATED_OTHERS,
    ESCALATED_LEADS,
    ESCALATED_OTHERS_NOBODY,
    ESCALATED_LEADS_NOBODY,
)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _pattern(template: str) -> re.Pattern:
    parts = _PLACEHOLDER.split(template)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$", re.S)


_STORED_PATTERNS = tuple((t, _pattern(t)) for t in STORED_TEMPLATES)


def stored_display(text: str) -> str:
    """A stored reason or note in the active language when it was filled from one of the
    templates above (its values as they are), else as stored (a clinician's own words)."""
    if not text:
        return ""
    for template, pattern in _STORED_PATTERNS:
        match = pattern.match(text)
        if match:
            return gettext(template) % match.groupdict()
    return text
