"""What a new rule-parameter version would do to a center's patients, computed without writing.

``rule_change_preview`` runs the engine over every patient that the version would apply to,
exactly as ``alerts_sync`` does when ``rule_parameters_publish`` saves it (the same timeline,
the same "today" in the center's time zone, a center's own set taking precedence over the
registry-wide one), and compares the findings with the alerts stored now:

* **raise**: a finding with no alert yet, or whose alert was withdrawn (it would open again);
* **withdraw**: an open or acknowledged alert whose finding would be gone;
* **keep**: an open or acknowledged alert whose finding remains (its evidence or parameter
  version may be updated, its status is kept).

Closed alerts are history: they are neither withdrawn nor reopened. Nothing is written, and no
notification is recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from monitoring.engine import evaluate
from monitoring.models import ACTIVE_STATUSES, WITHDRAWN, RuleParameterSet
from monitoring.params import RuleParams
from monitoring.rules import RULE_NAMES
from monitoring.selectors import patient_timeline, rule_params_for
from patients.models import Center, Patient
from patients.validation import today_in

RAISE, WITHDRAW, KEEP = "raise", "withdraw", "keep"
ACTIONS = (RAISE, WITHDRAW, KEEP)


@dataclass(frozen=True)
class PreviewItem:
    study_id: str
    rule: str
    infusion_number: int
    day: int
    action: str
    status_now: str  # "" for a new alert, else the stored alert's status


@dataclass
class RulePreview:
    center: str  # center code, or "registry" for the registry-wide set
    params: dict[str, Any]
    n_patients: int = 0
    items: list[PreviewItem] = field(default_factory=list)

    def by_rule(self) -> list[dict[str, Any]]:
        """Per rule (in RULES order): the patients (study IDs) of each action."""
        rows = []
        for rule in RULE_NAMES:
            mine = [i for i in self.items if i.rule == rule]
            if not mine:
                continue
            rows.append(
                {
                    "rule": rule,
                    **{
                        action: sorted(i.study_id for i in mine if i.action == action)
                        for action in ACTIONS
                    },
                }
            )
        return rows

    def keys(self, action: str) -> set[tuple[str, str, int]]:
        return {(i.study_id, i.rule, i.infusion_number) for i in self.items if i.action == action}

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": self.center,
            "params": self.params,
            "n_patients": self.n_patients,
            "counts": {a: sum(1 for i in self.items if i.action == a) for a in ACTIONS},
            "by_rule": self.by_rule(),
            "items": [asdict(i) for i in self.items],
        }


def _patients(center: Center | None):
    """The patients a version for ``center`` re-evaluates (no center: every patient)."""
    qs = Patient.objects.select_related("center").order_by("pk")
    if center is not None:
        return qs.filter(center=center)
    return qs


def rule_change_preview(
    *, center: Center | None, params: RuleParams, as_of: date | None = None
) -> RulePreview:
    """Run the engine over every patient the new version would apply to; write nothing."""
    own_sets = set(
        RuleParameterSet.objects.filter(is_current=True, center__isnull=False).values_list(
            "center_id", flat=True
        )
    )
    preview = RulePreview(center=center.code if center else "registry", params=params.to_dict())
    fallback: dict[int, RuleParams] = {}
    for patient in _patients(center).prefetch_related(
        "infusions", "lab_results", "responses", "events", "alerts__infusion"
    ):
        preview.n_patients += 1
        effective = params
        if center is None and patient.center_id in own_sets:
            # A center's own set wins over the registry-wide one (rule_params_for).
            if patient.center_id not in fallback:
                fallback[patient.center_id] = rule_params_for(patient.center)
            effective = fallback[patient.center_id]
        today = as_of or today_in(patient.center.tzinfo)
        numbers = {i.pk: i.infusion_number for i in patient.infusions.all()}
        findings = {f.key: f for f in evaluate(patient_timeline(patient), effective, as_of=today)}
        existing = {(a.infusion_id, a.rule): a for a in patient.alerts.all()}
        for key, finding in findings.items():
            alert = existing.get(key)
            if alert is None or alert.status == WITHDRAWN:
                action = RAISE
            elif alert.status in ACTIVE_STATUSES:
                action = KEEP
            else:
                continue  # closed: stays closed
            preview.items.append(
                PreviewItem(
                    patient.study_id,
                    finding.rule,
                    numbers[finding.infusion_id],
                    finding.day,
                    action,
                    alert.status if alert else "",
                )
            )
        for key, alert in existing.items():
            if key not in findings and alert.status in ACTIVE_STATUSES:
                preview.items.append(
                    PreviewItem(
                        patient.study_id,
                        alert.rule,
                        alert.infusion_number,
                        alert.day,
                        WITHDRAW,
                        alert.status,
                    )
                )
    return preview
