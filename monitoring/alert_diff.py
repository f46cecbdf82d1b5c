"""What must change so that a patient's alerts match the findings: a plan, no database.

`alerts_diff` compares the rules' findings with the patient's existing alerts and returns the
changes in the order they are applied: alerts raised, re-opened or with a newer basis (in the
findings' order), then alerts withdrawn. The per-patient path (`services.alerts_sync`) applies a
plan with one save per alert; the bulk sweep (`monitoring.sweep`) applies the plans of many
patients with a few bulk queries. Both share this function, so they decide alike.

Existing alerts are changed in memory (fields, status, withdrawal); new alerts are unsaved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from django.core.serializers.json import DjangoJSONEncoder

from monitoring.findings import Finding
from monitoring.models import ACTIVE_STATUSES, OPEN, WITHDRAWN, Alert
from monitoring.params import RuleParams
from monitoring.timeline_json import evidence_to_dict

RAISED = "raised"
REOPENED = "reopened"
UPDATED = "updated"
WITHDRAWN_CHANGE = "withdrawn"

RAISED_REASON = "Raised by the rules engine."
RAISED_HISTORY_REASON = "Raised from historical data (not notified)."
REOPENED_REASON = "The rule's condition holds again."


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


def is_history(finding: Finding, historical_before: date | None) -> bool:
    if historical_before is None:
        return False
    return date.fromisoformat(finding.details["date"]) < historical_before


def _analyte_label(code: str | None) -> str:
    from patients.units import ANALYTES

    return ANALYTES[code].label if code in ANALYTES else str(code)


def withdrawal_reason(alert: Alert, timeline_result_ids: set[int]) -> str:
    if alert.infusion_id is None:
        return "The infusion this alert was about was deleted."
    missing = [e for e in alert.evidence if e.get("result_id") not in timeline_result_ids]
    if missing:
        return (
            "A result this alert rested on was deleted: "
            f"{_analyte_label(missing[0].get('analyte'))} of day {missing[0].get('day')}."
        )
    return (
        "Re-evaluated after a change to the patient's data (a lab corrected, an infusion "
        "date fixed, a response or event recorded): the rule's condition no longer holds."
    )


def alerts_diff(
    *,
    patient_id: int,
    findings: list[Finding],
    existing: list[Alert],
    params: RuleParams,
    result_ids: set[int],
    historical_before: date | None,
    notify: bool,
    now: datetime,
) -> list[AlertChange]:
    """The changes that make `existing` (all the patient's alerts) match `findings`."""
    by_key = {(a.infusion_id, a.rule): a for a in existing}
    found = {f.key: f for f in findings}
    changes: list[AlertChange] = []
    for key, finding in found.items():
        fields = finding_fields(finding, params)
        alert = by_key.get(key)
        if alert is None:
            history = is_history(finding, historical_before)
            alert = Alert(
                patient_id=patient_id,
                infusion_id=finding.infusion_id,
                rule=finding.rule,
                historical=history,
                status=OPEN,
                **fields,
            )
            reason = RAISED_HISTORY_REASON if history else RAISED_REASON
            changes.append(AlertChange(RAISED, alert, "", reason, notify and not history))
            continue
        if alert.status == WITHDRAWN:
            for name, value in fields.items():
                setattr(alert, name, value)
            alert.withdrawn_at, alert.withdrawn_reason = None, ""
            history = is_history(finding, historical_before)
            alert.historical = history
            alert.status = OPEN
            # Only those not yet told about this alert are e-mailed (never the same e-mail twice).
            changes.append(
                AlertChange(REOPENED, alert, WITHDRAWN, REOPENED_REASON, notify and not history)
            )
        elif any(getattr(alert, name) != value for name, value in fields.items()):
            # Same alert, newer evidence (e.g. a later count, changed parameters): keep its status.
            for name, value in fields.items():
                setattr(alert, name, value)
            changes.append(AlertChange(UPDATED, alert))
    for key, alert in by_key.items():
        if key in found or alert.status not in ACTIVE_STATUSES:
            continue
        reason = withdrawal_reason(alert, result_ids)
        old_status = alert.status
        alert.status = WITHDRAWN
        alert.withdrawn_at, alert.withdrawn_reason = now, reason
        changes.append(AlertChange(WITHDRAWN_CHANGE, alert, old_status, reason))
    return changes
