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
from monitoring.models import ACTIVE_STATUSES, WITHDRAWN, Alert, RuleParameterSet
from monitoring.params import RuleParams
from monitoring.rules import RULE_NAMES
from monitoring.selectors import params_in_force_for_centers, timelines_read
from monitoring.sweep import BATCH
from patients.models import Center, Infusion, Patient
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


def _patients(center: Center | None) -> list[tuple[int, int]]:
    """(patient id, center id) of the patients a version for ``center`` re-evaluates (no
    center: every patient), by id."""
    qs = Patient.objects.order_by("pk")
    if center is not None:
        qs = qs.filter(center=center)
    return list(qs.values_list("pk", "center_id"))


def rule_change_preview(
    *, center: Center | None, params: RuleParams, as_of: date | None = None
) -> RulePreview:
    """Run the engine over every patient the new version would apply to; write nothing.

    Read as the sweep reads: BATCH patients at a time, their timelines by one query per
    section (`timelines_read`), their alerts and infusion numbers by one query each."""
    own_sets = set(
        RuleParameterSet.objects.filter(is_current=True, center__isnull=False).values_list(
            "center_id", flat=True
        )
    )
    preview = RulePreview(center=center.code if center else "registry", params=params.to_dict())
    centers = {c.pk: c for c in Center.objects.all()}
    effective: dict[int, RuleParams] = {}
    today: dict[int, date] = {}
    in_force = params_in_force_for_centers(own_sets if center is None else ())
    for center_id, found in centers.items():
        # A center's own set wins over the registry-wide one (params_in_force_for_centers).
        own = center is None and center_id in own_sets
        effective[center_id] = in_force[center_id] if own else params
        today[center_id] = as_of or today_in(found.tzinfo)
    patients = _patients(center)
    preview.n_patients = len(patients)
    for start in range(0, len(patients), BATCH):
        ids = [pk for pk, _ in patients[start : start + BATCH]]
        study_ids = dict(Patient.objects.filter(pk__in=ids).values_list("pk", "study_id"))
        numbers = dict(
            Infusion.objects.filter(patient_id__in=ids).values_list("pk", "infusion_number")
        )
        alerts: dict[int, dict[tuple[int, str], Alert]] = {pk: {} for pk in ids}
        # The model's ordering (newest first), as patient.alerts.all() gives them.
        for alert in Alert.objects.filter(patient_id__in=ids).select_related("infusion"):
            alerts[alert.patient_id][(alert.infusion_id, alert.rule)] = alert
        for read in timelines_read(ids):
            cid = read.center_id
            findings = {f.key: f for f in evaluate(read.timeline, effective[cid], as_of=today[cid])}
            _compare(
                preview, study_ids[read.patient_id], findings, alerts[read.patient_id], numbers
            )
    return preview


def _compare(
    preview: RulePreview,
    study_id: str,
    findings: dict,
    existing: dict[tuple[int, str], Alert],
    numbers: dict[int, int],
) -> None:
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
                study_id,
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
                    study_id,
                    alert.rule,
                    alert.infusion_number,
                    alert.day,
                    WITHDRAW,
                    alert.status,
                )
            )
