"""The rules engine: one patient's timeline and the parameters in, findings out.

Eligibility (CLINICAL.md section 4): the rules apply to an infusion's window while the patient is
alive, has no relapse recorded after that infusion, and the response to that infusion is CR/CRi or
not yet assessed. Decided precisely:

- A death recorded (on or before ``as_of``) ends monitoring: no findings for any window. Once the
  patient has died, a pre-emptive alert can help no one.
- A relapse dated after an infusion's date suppresses every finding of that window, including
  those dated before the relapse: once relapse is recorded, the pre-emptive question the alerts
  exist for is moot, and the alert list should show the relapse, not stale warnings. A relapse
  dated on the day of a later infusion (the relapse that prompted it) belongs to the earlier
  window, so a second CAR-T infusion is monitored afresh.
- The response to an infusion is its latest assessment after the infusion date, up to and
  including the next infusion's date; "NE" (not evaluable) is no assessment. If that latest
  response is PR, NR or PD, the window has no findings: the study's finding concerns patients in
  remission. An early PR later superseded by CR leaves the window monitored.
- Allogeneic HSCT and last follow-up do not affect eligibility (CLINICAL.md does not list them).

At most one finding per (infusion, rule); findings are ordered by infusion, then by ``RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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


def _ineligibility(known: Timeline, window: Window) -> str:
    deaths = known.events_of(DEATH)
    if deaths:
        return f"death recorded on {deaths[0].date.isoformat()}"
    relapse = next((e for e in known.events_of(RELAPSE) if e.date > window.start), None)
    if relapse is not None:
        return f"relapse recorded on {relapse.date.isoformat()}, after this infusion"
    assessments = [
        r
        for r in known.responses
        if r.response != NE and window.start < r.date and (window.end is None or r.date <= window.end)
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
        reason = _ineligibility(known, window)
        statuses.append(
            WindowStatus(
                infusion_id=window.infusion_id,
                infusion_number=window.infusion.number,
                eligible=not reason,
                reason=reason,
            )
        )
    return tuple(statuses)


def evaluate(timeline: Timeline, params: RuleParams, *, as_of: date | None = None) -> list[Finding]:
    """All findings for one patient, as known on ``as_of`` (default: everything recorded).

    Without ``as_of`` there is no "today": the time-based count-due rule yields nothing, and
    "day 28 has passed" is judged from the latest date recorded in the timeline.
    """
    statuses = window_statuses(timeline, as_of=as_of)
    eligible = {s.infusion_id for s in statuses if s.eligible}
    infusion_rank = {s.infusion_id: rank for rank, s in enumerate(statuses)}
    ranked: dict[tuple[int, str], tuple[int, int, Finding]] = {}
    for rule_rank, (_, rule) in enumerate(RULES):
        for finding in rule(timeline, params, as_of=as_of):
            if finding.infusion_id not in eligible or finding.key in ranked:
                continue
            ranked[finding.key] = (infusion_rank[finding.infusion_id], rule_rank, finding)
    return [finding for *_, finding in sorted(ranked.values(), key=lambda item: item[:2])]
