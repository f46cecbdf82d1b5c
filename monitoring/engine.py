"""The rules engine: one patient's timeline and the parameters in, findings out.

Eligibility (CLINICAL.md section 4): the rules apply to an infusion's window while the patient is
alive, has no relapse recorded after that infusion, and the response to that infusion is CR/CRi or
not yet assessed. Decided precisely:

- A relapse dated after an infusion's date, or a death, ends that window's monitoring on its
  date: the rules read only what was known the day before, so a finding made while the patient
  was alive and relapse-free still stands (an early-regeneration alert that a relapse later
  proved right is the alert doing its job, and its closing outcome measures the rule), and
  nothing after the relapse or death can raise one. Time-based rules (count due) no longer fire
  for such a window. A relapse dated on the day of a later infusion (the relapse that prompted
  it) belongs to the earlier window, so a second CAR-T infusion is monitored afresh.
- The response to an infusion is its latest assessment after the infusion date, up to and
  including the next infusion's date (and before a relapse or death that ended the window);
  "NE" (not evaluable) is no assessment. If that latest response is PR, NR or PD, the window has
  no findings: the study's finding concerns patients in remission. An early PR later superseded
  by CR leaves the window monitored.
- Allogeneic HSCT and last follow-up do not affect eligibility (CLINICAL.md does not list them).

At most one finding per (infusion, rule); findings are ordered by infusion, then by ``RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from monitoring.findings import Finding
from monitoring.params import RuleParams
from monitoring.rules import RULES
from monitoring.timeline import DEATH, NE, RELAPSE, REMISSION, Timeline, Window


@dataclass(frozen=True)
class WindowStatus:
    infusion_id: int
    infusion_number: int
    eligible: bool
    reason: str = ""  # why the rules do not apply, in words; empty when eligible
    # The day before the relapse or death that ended monitoring of this window, if any.
    monitored_until: date | None = None
    ended_by: str = ""  # "relapse recorded on ...", "death recorded on ..."


def _ending(known: Timeline, window: Window) -> tuple[date | None, str]:
    """The relapse (after this infusion) or death that ends the window's monitoring."""
    endings = [
        (e.date, f"{e.kind} recorded on {e.date.isoformat()}")
        for e in known.events
        if (e.kind == RELAPSE and e.date > window.start)
        or (e.kind == DEATH and e.date >= window.start)
    ]
    if not endings:
        return None, ""
    when, text = min(endings)
    return when - timedelta(days=1), text


def _ineligibility(known: Timeline, window: Window, until: date | None) -> str:
    assessments = [
        r
        for r in known.responses
        if r.response != NE
        and window.start < r.date
        and (window.end is None or r.date <= window.end)
        and (until is None or r.date <= until)
    ]
    if assessments and assessments[-1].response not in REMISSION:
        latest = assessments[-1]
        return f"response {latest.response} on {latest.date.isoformat()} (not CR/CRi)"
    return ""


def window_statuses(timeline: Timeline, *, as_of: date | None = None) -> tuple[WindowStatus, ...]:
    """Whether the rules apply to each infusion's window, and if not, why."""
    known = timeline.until(as_of)
    statuses = []
    for window in known.windows():
        until, ended_by = _ending(known, window)
        reason = _ineligibility(known, window, until)
        statuses.append(
            WindowStatus(
                infusion_id=window.infusion_id,
                infusion_number=window.infusion.number,
                eligible=not reason,
                reason=reason,
                monitored_until=until,
                ended_by=ended_by,
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
    # Windows that a relapse or death ended are read as known the day before it, with no
    # "today" (so no time-based reminder); the others as known on as_of.
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
