"""What must change so that a patient's alerts match the findings: a plan, no database.

`alerts_diff` compares the rules' findings with the patient's existing alerts and returns the
changes in the order they are applied: alerts raised, re-opened or with a newer basis (in the
findings' order), then alerts withdrawn. The per-patient path (`services.alerts_sync`) applies a
plan with one save per alert; the bulk sweep (`monitoring.sweep`) applies the plans of many
patients with a few bulk queries. Both share this function, so they decide alike.

Nothing given is changed: a change to an existing alert carries a copy of it with the new fields
(saved by whoever applies the plan), new alerts are unsaved. So the rule-change preview runs the
same function as a dry run (`monitoring.preview`).

Whether a raised or re-opened alert is news or history is `monitoring.news`'s decision, passed
in as `arrival` (None: everything is news, nothing records an arrival).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.core.serializers.json import DjangoJSONEncoder

from monitoring import texts
from monitoring.findings import Finding
from monitoring.models import ACTIVE_STATUSES, OPEN, WITHDRAWN, Alert
from monitoring.news import Arrival
from monitoring.params import RuleParams
from monitoring.timeline_json import evidence_to_dict

RAISED = "raised"
REOPENED = "reopened"
UPDATED = "updated"
WITHDRAWN_CHANGE = "withdrawn"

RAISED_REASON = texts.RAISED_REASON
RAISED_HISTORY_REASON = texts.RAISED_HISTORY_REASON
REOPENED_HISTORY_REASON = texts.REOPENED_HISTORY_REASON
REOPENED_REASON = texts.REOPENED_REASON


@dataclass
class AlertChange:
    kind: str  # RAISED, REOPENED, UPDATED or WITHDRAWN_CHANGE
    alert: Alert
    old_status: str = ""  # the status before (empty for a new alert)
    reason: str = ""  # the status change's reason (none for UPDATED)
    notify: bool = False  # record notifications for it (raised or re-opened, not history)

    @property
    def status_changed(self) -> bool:
        return self.kind != UPDATED


def finding_fields(finding: Finding, params: RuleParams) -> dict:
    """An alert's fields as a finding and its parameters give them (JSON-safe)."""
    return {
        "severity": finding.severity,
        "title": finding.title,
        "day": finding.day,
        "evidence": [evidence_to_dict(e) for e in finding.evidence],
        "details": _json_safe(finding.details),
        "params": _params_dict(params),
        "rule_version": params.version,
        "infusion_number": finding.details.get("infusion_number", 0),
    }


# The fields `alerts_diff` may change on an existing alert (what a bulk update writes).
DIFF_FIELDS = (
    "severity",
    "title",
    "day",
    "evidence",
    "details",
    "params",
    "rule_version",
    "infusion_number",
    "status",
    "historical",
    "history_reason",
    "arrived_at",
    "late_days",
    "withdrawn_at",
    "withdrawn_reason",
)


@lru_cache(maxsize=64)
def _params_dict_cached(params: RuleParams) -> dict:
    return params.to_dict()


def _params_dict(params: RuleParams) -> dict:
    # One set of parameters serves a whole center: converted once, copied per alert.
    return dict(_params_dict_cached(params))


def _json_safe(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _arrival_fields(arrival: Arrival | None) -> dict:
    if arrival is None:
        return {"historical": False, "history_reason": "", "arrived_at": None, "late_days": None}
    return {
        "historical": arrival.is_history,
        "history_reason": arrival.history[:300],
        "arrived_at": arrival.at,
        "late_days": arrival.late_days,
    }


def _analyte_label(code: str | None) -> str:
    from patients.units import ANALYTES

    return ANALYTES[code].label if code in ANALYTES else str(code)


def withdrawal_reason(alert: Alert, timeline_result_ids: set[int]) -> str:
    if alert.infusion_id is None:
        return texts.WITHDRAWN_INFUSION_DELETED
    missing = [e for e in alert.evidence if e.get("result_id") not in timeline_result_ids]
    if missing:
        return texts.WITHDRAWN_RESULT_DELETED % {
            "analyte": texts.english(_analyte_label(missing[0].get("analyte"))),
            "day": missing[0].get("day"),
        }
    return texts.WITHDRAWN_NO_LONGER_HOLDS


def alerts_diff(
    *,
    patient_id: int,
    findings: list[Finding],
    existing: list[Alert],
    params: RuleParams,
    result_ids: set[int],
    arrival: Callable[[Finding], Arrival] | None,
    notify: bool,
    now: datetime,
) -> list[AlertChange]:
    """The changes that make `existing` (all the patient's alerts) match `findings`; `existing`
    is left as it was (a changed alert is a copy)."""
    by_key = {(a.infusion_id, a.rule): a for a in existing}
    found = {f.key: f for f in findings}
    changes: list[AlertChange] = []
    for key, finding in found.items():
        fields = finding_fields(finding, params)
        stored = by_key.get(key)
        if stored is None:
            news = _arrival_fields(arrival(finding) if arrival else None)
            alert = Alert(
                patient_id=patient_id,
                infusion_id=finding.infusion_id,
                rule=finding.rule,
                status=OPEN,
                **news,
                **fields,
            )
            history = news["historical"]
            reason = RAISED_HISTORY_REASON if history else RAISED_REASON
            changes.append(AlertChange(RAISED, alert, "", reason, notify and not history))
            continue
        if stored.status == WITHDRAWN:
            news = _arrival_fields(arrival(finding) if arrival else None)
            alert = _copy(stored, **fields, **news, withdrawn_at=None, withdrawn_reason="")
            alert.status = OPEN
            history = news["historical"]
            reason = REOPENED_HISTORY_REASON if history else REOPENED_REASON
            # Only those not yet told about this alert are e-mailed (never the same e-mail twice).
            changes.append(AlertChange(REOPENED, alert, WITHDRAWN, reason, notify and not history))
        elif any(getattr(stored, name) != value for name, value in fields.items()):
            # Same alert, newer evidence (e.g. a later count, changed parameters): keep its status.
            changes.append(AlertChange(UPDATED, _copy(stored, **fields)))
    for key, stored in by_key.items():
        if key in found or stored.status not in ACTIVE_STATUSES:
            continue
        reason = withdrawal_reason(stored, result_ids)
        alert = _copy(stored, status=WITHDRAWN, withdrawn_at=now, withdrawn_reason=reason)
        changes.append(AlertChange(WITHDRAWN_CHANGE, alert, stored.status, reason))
    return changes


def _copy(alert: Alert, **fields) -> Alert:
    """A copy of a stored alert with new field values (the same pk: saving it updates the row).
    Django's pickling state copies `_state` and the related-object cache, so the two are apart."""
    changed = copy.copy(alert)
    for name, value in fields.items():
        setattr(changed, name, value)
    return changed
