"""What is news, and what is history (CLINICAL.md section 4): a pure decision, no database.

A finding is news (e-mailed, on the worklist, in the alert count) unless

- it arrived in an import its sender declared as history (a backfill of past records), or
- the course had already answered it when it arrived: that window's monitoring had ended (a
  relapse, death, lost remission or HSCT), a pre-emptive therapy was started on or after the
  finding's day, a newer infusion had opened a newer window, or the finding's day is more than
  `stale_after_days` [60] before its arrival.

The age of a result alone never makes it history: a regeneration collected on day 45 that arrives
on day 53 is news, and says so ("collected 8 days before it arrived").

A finding "arrives" with the latest of its evidence results (their `arrived_at`, the time the
result was entered); a finding without stored evidence (no aplasia by day 28, with no count)
arrives when it is evaluated. An evaluation "as of" a past day never sees a later arrival.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from monitoring import texts
from monitoring.engine import window_statuses
from monitoring.findings import Finding
from monitoring.timeline import Timeline
from patients.days import local_date

DECLARED = texts.HISTORY_DECLARED


@dataclass(frozen=True)
class NewsContext:
    """What one evaluation of one patient knows besides the timeline."""

    today: date  # the evaluation's day in the center's zone
    now: datetime
    tz: tzinfo
    stale_after_days: int
    declared_history: bool = False  # the import that triggered this evaluation says "history"
    therapy_starts: tuple[date, ...] = ()  # the patient's pre-emptive therapies


@dataclass(frozen=True)
class Arrival:
    at: datetime  # when the finding arrived (its latest evidence result)
    on: date  # that day in the center's zone (never after the evaluation's day)
    late_days: int  # days from the finding's day to its arrival (0: on time)
    history: str  # why it is history, "" when it is news

    @property
    def is_history(self) -> bool:
        return bool(self.history)


def finding_date(finding: Finding) -> date:
    return date.fromisoformat(finding.details["date"])


def finding_arrival(finding: Finding, timeline: Timeline, context: NewsContext) -> Arrival:
    """When `finding` arrived and whether it is news (see the module's docstring)."""
    arrived = {r.id: r.arrived_at for r in timeline.results}
    times = [arrived.get(e.result_id) for e in finding.evidence]
    known = [t for t in times if t is not None]
    at = max(known) if known else context.now
    on = min(local_date(at, context.tz), context.today)
    day = finding_date(finding)
    late = max((on - day).days, 0)
    return Arrival(at=at, on=on, late_days=late, history=_history(finding, timeline, context, on))


def _history(finding: Finding, timeline: Timeline, context: NewsContext, on: date) -> str:
    if context.declared_history:
        return DECLARED
    day = finding_date(finding)
    status = next(
        (s for s in window_statuses(timeline, as_of=on) if s.infusion_id == finding.infusion_id),
        None,
    )
    if status is not None and status.monitored_until is not None:
        return texts.HISTORY_MONITORING_ENDED % {"ended_by": status.ended_by}
    started = sorted(s for s in context.therapy_starts if day <= s <= on)
    if started:
        return texts.HISTORY_THERAPY_STARTED % {"date": started[0].isoformat()}
    window_start = next((i.date for i in timeline.infusions if i.id == finding.infusion_id), None)
    newer = sorted(
        i.date for i in timeline.infusions if window_start and window_start < i.date <= on
    )
    if newer:
        return texts.HISTORY_NEWER_INFUSION % {"date": newer[0].isoformat()}
    if (on - day).days > context.stale_after_days:
        return texts.HISTORY_STALE % {
            "date": day.isoformat(),
            "days": (on - day).days,
            "limit": context.stale_after_days,
        }
    return ""
