"""The rules engine: one patient's timeline and the parameters in, findings out.

Eligibility (CLINICAL.md section 4): the rules apply to an infusion's window while the patient is
alive, has no relapse recorded after that infusion, and the response to that infusion is CR/CRi or
not yet assessed. Decided precisely:

- A window whose first response assessment after the infusion ("NE", not evaluable, is no
  assessment) is PR, NR or PD has no findings: the study's finding concerns patients in
  remission.
- Anything that ends remission or the CAR-T course ends the window's monitoring on its date: a
  relapse dated after the infusion, a death, a later response of PR/NR/PD after CR/CRi, and an
  allogeneic HSCT dated after the infusion (donor B cells engrafting after a transplant are not
  CAR-T failure). The rules then read only what was known the day before, so a finding made
  before that date still stands (an early-regeneration alert that a relapse later proved right
  is the alert doing its job, and its closing outcome measures the rule), and nothing dated on
  or after it raises one. Time-based rules (count due) no longer fire for such a window. A
  relapse or HSCT dated on the day of a later infusion belongs to the earlier window, so a
  second CAR-T infusion is monitored afresh; an HSCT before an infusion (common before CAR-T)
  does not affect its window.
- Assessments count after the infusion date, up to and including the next infusion's date, and
  before any event that ended the window. Same-day assessments are taken in entry order.
- Last follow-up does not affect eligibility.

At most one finding per (infusion, rule); findings are ordered by infusion, then by ``RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from monitoring.findings import REGENERATION, Finding
from monitoring.params import RuleParams
from monitoring.rules import RULES
from monitoring.rules.recovery import first_aplasia
from monitoring.texts import EARLY_REGENERATION, LATE_RECOVERY
from monitoring.timeline import (
    DEATH,
    HSCT,
    NE,
    RELAPSE,
    REMISSION,
    ResponsePoint,
    Timeline,
    Window,
)


@dataclass(frozen=True)
class WindowStatus:
    infusion_id: int
    infusion_number: int
    eligible: bool
    reason: str = ""  # why the rules do not apply, in words; empty when eligible
    # The day before the relapse, death, later PR/NR/PD or HSCT that ended monitoring, if any.
    monitored_until: date | None = None
    ended_by: str = ""  # "relapse recorded on ...", "response PD on ... after CR", ...


_EVENT_WORDS = {RELAPSE: "relapse", DEATH: "death", HSCT: "allogeneic HSCT"}


def _event_ending(known: Timeline, window: Window) -> tuple[date, str] | None:
    """The earliest relapse or HSCT after this infusion, or death, that ends the window."""
    endings = [
        (e.date, f"{_EVENT_WORDS[e.kind]} recorded on {e.date.isoformat()}")
        for e in known.events
        if (e.kind in (RELAPSE, HSCT) and e.date > window.start)
        or (e.kind == DEATH and e.date >= window.start)
    ]
    return min(endings) if endings else None


def _assessments(known: Timeline, window: Window, before: date | None) -> list[ResponsePoint]:
    """The window's assessments in order (NE aside), before an event that ended it."""
    return [
        r
        for r in known.responses
        if r.response != NE
        and window.start < r.date
        and (window.end is None or r.date <= window.end)
        and (before is None or r.date < before)
    ]


def window_statuses(timeline: Timeline, *, as_of: date | None = None) -> tuple[WindowStatus, ...]:
    """Whether the rules apply to each infusion's window, and if not, why."""
    known = timeline.until(as_of)
    statuses = []
    for window in known.windows():
        endings = []
        event_ending = _event_ending(known, window)
        if event_ending:
            endings.append(event_ending)
        assessed = _assessments(known, window, event_ending[0] if event_ending else None)
        reason = ""
        if assessed and assessed[0].response not in REMISSION:
            first = assessed[0]
            reason = f"first response {first.response} on {first.date.isoformat()} (not CR/CRi)"
        else:
            # Remission ends with the first PR/NR/PD after the CR/CRi.
            lost = next((r for r in assessed if r.response not in REMISSION), None)
            if lost is not None:
                endings.append(
                    (
                        lost.date,
                        f"response {lost.response} on {lost.date.isoformat()} after "
                        f"{assessed[0].response}",
                    )
                )
        ended = min(endings) if endings else None
        statuses.append(
            WindowStatus(
                infusion_id=window.infusion_id,
                infusion_number=window.infusion.number,
                eligible=not reason,
                reason=reason,
                monitored_until=ended[0] - timedelta(days=1) if ended else None,
                ended_by=ended[1] if ended else "",
            )
        )
    return tuple(statuses)


def evaluate(timeline: Timeline, params: RuleParams, *, as_of: date | None = None) -> list[Finding]:
    """All findings for one patient, as known on ``as_of`` (default: everything recorded).

    Without ``as_of`` there is no "today": the time-based count-due rule yields nothing, and
    "day 28 has passed" is judged from the latest date recorded in the timeline.
    """
    statuses = window_statuses(timeline, as_of=as_of)
    infusion_rank = {s.infusion_id: rank for rank, s in enumerate(statuses)}
    ranked: dict[tuple[int, str], tuple[int, int, Finding]] = {}
    # Windows that an ending (relapse, death, lost remission, HSCT) closed are read as known the
    # day before it, with no "today" (so no time-based reminder); the others as known on as_of.
    views: dict[tuple[date | None, bool], set[int]] = {}
    for status in statuses:
        if status.eligible:
            view = (status.monitored_until, status.monitored_until is None)
            views.setdefault(view, set()).add(status.infusion_id)
    for (until, open_window), infusion_ids in views.items():
        seen = timeline.until(until) if until is not None else timeline
        for rule_rank, (_, rule) in enumerate(RULES):
            for finding in rule(seen, params, as_of=as_of if open_window else None):
                if finding.infusion_id not in infusion_ids or finding.key in ranked:
                    continue
                ranked[finding.key] = (infusion_rank[finding.infusion_id], rule_rank, finding)
    return [finding for *_, finding in sorted(ranked.values(), key=lambda item: item[:2])]


APLASIA_MARK, EARLY_MARK, LATE_MARK = "aplasia", "early", "late"


@dataclass(frozen=True)
class RecoveryMark:
    """A mark on the course chart: aplasia reached, or the regeneration day of a finding."""

    infusion_id: int
    infusion_number: int
    kind: str  # APLASIA_MARK, EARLY_MARK or LATE_MARK
    day: int
    on: date
    count: Decimal | None  # cells/µL, measured or % × ALC; None when not known or not detectable

    @property
    def label(self) -> str:
        if self.kind == APLASIA_MARK:
            return "aplasia"
        return f"{'early' if self.kind == EARLY_MARK else 'late'} regeneration (day {self.day})"


def recovery_marks(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[RecoveryMark]:
    """The course chart's aplasia and regeneration marks, decided by the rules themselves.

    Aplasia: the first post-infusion count of each window that is not detectable by the center's
    definition. Regeneration: marked exactly when the engine finds an early regeneration or a
    late recovery for that infusion (eligibility, the center's window, threshold, % of
    lymphocytes and confirmation included), on the finding's regeneration day, so the chart's
    "early regeneration" exists if and only if the alert does.
    """
    findings = {
        (f.infusion_id, f.rule): f
        for f in evaluate(timeline, params, as_of=as_of)
        if f.rule in (EARLY_REGENERATION, LATE_RECOVERY)
    }
    marks = []
    for window in timeline.until(as_of).windows():
        aplasia = first_aplasia(window, params)
        if aplasia is not None:
            marks.append(_mark(window, APLASIA_MARK, aplasia, None))
        for rule, kind in ((EARLY_REGENERATION, EARLY_MARK), (LATE_RECOVERY, LATE_MARK)):
            finding = findings.get((window.infusion_id, rule))
            if finding is None:
                continue
            onset_ids = {e.result_id for e in finding.evidence if e.role == REGENERATION}
            onset = next(s for s in window.bcell_samples() if {r.id for r in s.results} & onset_ids)
            marks.append(_mark(window, kind, onset, onset.count()))
    return marks


def _mark(window: Window, kind: str, sample, count: Decimal | None) -> RecoveryMark:
    return RecoveryMark(
        infusion_id=window.infusion_id,
        infusion_number=window.infusion.number,
        kind=kind,
        day=sample.day,
        on=sample.collected_on,
        count=count if count is not None and count > 0 else None,
    )
