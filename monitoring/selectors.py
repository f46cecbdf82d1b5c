"""Read-only queries of the monitoring app: a patient's timeline as plain values, alert lists."""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When

from monitoring.models import ACTIVE_STATUSES, SEVERITY_RANK, Alert, RuleParameterSet
from monitoring.params import RuleParams
from monitoring.timeline import EventPoint, InfusionPoint, ResponsePoint, ResultPoint, Timeline
from patients.days import local_date
from patients.models import Patient
from patients.selectors import patients_visible_to


def patient_timeline(patient: Patient, labs=None) -> Timeline:
    """The patient's stored records as the rules engine reads them (dates in the center's zone).

    `labs` may give the lab results already read (anything with pk, analyte, specimen,
    collected_at, canonical_value and qualifier); by default they are read from the database.
    """
    tz = patient.center.tzinfo
    labs = patient.lab_results.all() if labs is None else labs
    return Timeline(
        patient_ref=patient.study_id,
        birth_date=patient.date_of_birth,
        infusions=tuple(
            InfusionPoint(i.pk, i.infusion_date, i.infusion_number) for i in patient.infusions.all()
        ),
        results=tuple(
            ResultPoint(
                id=r.pk,
                analyte=r.analyte,
                specimen=r.specimen,
                collected_on=local_date(r.collected_at, tz),
                collected_at=r.collected_at,
                value=r.canonical_value,
                qualifier=r.qualifier,
            )
            for r in labs
        ),
        responses=tuple(
            ResponsePoint(r.pk, r.assessed_on, r.response, r.mrd_status)
            for r in patient.responses.all()
        ),
        events=tuple(EventPoint(e.pk, e.kind, e.event_date) for e in patient.events.all()),
    )


def rule_params_for(center) -> RuleParams:
    """The center's current parameters, else the registry-wide ones, else the defaults."""
    for candidate in (center, None):
        found = RuleParameterSet.objects.filter(center=candidate, is_current=True).first()
        if found is not None:
            return found.to_rule_params()
    return RuleParams()


SEVERITY_ORDER = Case(
    *[When(severity=s, then=Value(rank)) for s, rank in SEVERITY_RANK.items()],
    output_field=IntegerField(),
)


def alerts_visible_to(user) -> QuerySet[Alert]:
    return Alert.objects.filter(patient__in=patients_visible_to(user)).select_related(
        "patient", "patient__center", "acknowledged_by"
    )


def alert_inbox(user, *, severity: str = "", center: str = "", status: str = "") -> QuerySet:
    """Open alerts first, by severity, then newest first; filters by severity, center, status."""
    qs = alerts_visible_to(user).annotate(severity_rank=SEVERITY_ORDER)
    if severity:
        qs = qs.filter(severity=severity)
    if center:
        qs = qs.filter(patient__center__code=center)
    if status == "active" or not status:
        # Historical alerts (imported history) are recorded, not work to do.
        qs = qs.filter(status__in=ACTIVE_STATUSES, historical=False)
    elif status == "historical":
        qs = qs.filter(historical=True)
    elif status != "all":
        qs = qs.filter(status=status)
    active_first = Case(
        When(status__in=ACTIVE_STATUSES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return qs.order_by(active_first, "severity_rank", "-raised_at", "-pk")


def open_alerts_by_patient(patient_ids: list[int]) -> dict[int, list[Alert]]:
    alerts: dict[int, list[Alert]] = {pk: [] for pk in patient_ids}
    qs = (
        Alert.objects.filter(patient_id__in=patient_ids, status__in=ACTIVE_STATUSES)
        .annotate(severity_rank=SEVERITY_ORDER)
        .order_by("severity_rank", "raised_at")
    )
    for alert in qs:
        alerts[alert.patient_id].append(alert)
    return alerts


def open_alert_count(user) -> tuple[int, int]:
    """(active alerts, of which high) on the patients the user sees: the navigation badge."""
    qs = alerts_visible_to(user).filter(status__in=ACTIVE_STATUSES, historical=False)
    return qs.count(), qs.filter(severity="high").count()


def alert_event_mark(patient: Patient) -> int:
    """The newest alert status change of the patient so far: what a save is compared against."""
    from monitoring.models import AlertEvent

    last = AlertEvent.objects.filter(alert__patient=patient).order_by("-pk").first()
    return last.pk if last else 0


def alert_changes_since(patient: Patient, mark: int) -> list:
    """The alert status changes made since `mark` (by the save in between), newest alert state."""
    from monitoring.models import AlertEvent

    events = (
        AlertEvent.objects.filter(alert__patient=patient, pk__gt=mark)
        .select_related("alert")
        .order_by("pk")
    )
    latest = {}
    for event in events:
        latest[event.alert_id] = event
    return list(latest.values())
