"""Read-only queries of the monitoring app: a patient's timeline as plain values, alert lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import BigIntegerField, Case, Func, IntegerField, QuerySet, Value, When

from carttrack.shared_reads import read_shared
from monitoring.models import (
    ACTIVE_STATUSES,
    SEVERITY_RANK,
    Alert,
    CenterAlerting,
    RuleParameterSet,
)
from monitoring.params import RuleParams
from monitoring.timeline import (
    EventPoint,
    InfusionPoint,
    ResponsePoint,
    ResultPoint,
    Timeline,
    Window,
)
from patients.days import local_date
from patients.models import Patient
from patients.selectors import patients_visible_to
from patients.versioned import setting_in_force, settings_in_force

# What a timeline is built from: each section's relation on Patient and the fields read, in the
# order `timeline_build` expects. The per-patient path (`patient_timeline`, from model instances or
# their prefetch cache) and the bulk path (`timelines_read`, one values_list query per section for
# many patients) both read through this table and build through `timeline_build`, so they cannot
# drift: a new section or field is added here and in `timeline_build`, once.
TIMELINE_SECTIONS: dict[str, tuple[str, ...]] = {
    "infusions": ("pk", "infusion_date", "infusion_number"),
    "lab_results": (
        "pk",
        "analyte",
        "specimen",
        "collected_at",
        "canonical_value",
        "qualifier",
        "entered_at",
    ),
    "responses": ("pk", "assessed_on", "response", "mrd_status"),
    "events": ("pk", "kind", "event_date"),
}


def timeline_build(
    *, patient_ref: str, birth_date, tz, rows: dict[str, Iterable[Sequence]]
) -> Timeline:
    """The one place a stored patient becomes a Timeline: `rows` per section of TIMELINE_SECTIONS,
    each row a tuple of that section's fields in order (dates in the center's zone `tz`)."""
    return Timeline(
        patient_ref=patient_ref,
        birth_date=birth_date,
        infusions=tuple(InfusionPoint(pk, on, number) for pk, on, number in rows["infusions"]),
        results=tuple(
            ResultPoint(
                id=pk,
                analyte=analyte,
                specimen=specimen,
                collected_on=local_date(collected_at, tz),
                collected_at=collected_at,
                value=value,
                qualifier=qualifier,
                arrived_at=entered_at,
            )
            for pk, analyte, specimen, collected_at, value, qualifier, entered_at in rows[
                "lab_results"
            ]
        ),
        responses=tuple(ResponsePoint(*row) for row in rows["responses"]),
        events=tuple(EventPoint(*row) for row in rows["events"]),
    )


def _instance_rows(instances, fields: tuple[str, ...]) -> list[tuple]:
    # A caller's unsaved lab values may lack entered_at (None: arriving now).
    return [tuple(getattr(obj, name, None) for name in fields) for obj in instances]


def patient_timeline(patient: Patient, labs=None) -> Timeline:
    """The patient's stored records as the rules engine reads them (dates in the center's zone).

    `labs` may give the lab results already read (anything with pk, analyte, specimen,
    collected_at, canonical_value and qualifier); by default they are read from the database.
    Related records come through `.all()`, so a caller's prefetch is used.
    """
    rows = {
        section: _instance_rows(
            getattr(patient, section).all() if section != "lab_results" or labs is None else labs,
            fields,
        )
        for section, fields in TIMELINE_SECTIONS.items()
    }
    return timeline_build(
        patient_ref=patient.study_id,
        birth_date=patient.date_of_birth,
        tz=patient.center.tzinfo,
        rows=rows,
    )


@dataclass(frozen=True)
class PatientTimeline:
    patient_id: int
    center_id: int
    timeline: Timeline


# Up to this many patients, a read is shared by what runs after one write (carttrack.shared_reads:
# the alert evaluation and the stored analysis rows read the timelines once); a bulk import's
# batches are read each time, so a scope never holds a registry's timelines.
SHARED_READ_MOST = 100


def timelines_read(patient_ids: Iterable[int]) -> list[PatientTimeline]:
    """Many patients' timelines in one query per section (plain tuples, no model instances),
    ordered by patient id: what the sweep evaluates in bulk. Same values as `patient_timeline`.
    The values are frozen; inside a `reads_shared` scope a few patients' read is shared."""
    ids = sorted(set(patient_ids))
    if not ids:
        return []
    if len(ids) > SHARED_READ_MOST:
        return _timelines_read(ids)
    return list(read_shared(("timelines", tuple(ids)), lambda: _timelines_read(ids)))


def _timelines_read(ids: list[int]) -> list[PatientTimeline]:
    from patients.models import Center

    rows: dict[int, dict[str, list[tuple]]] = {
        pk: {section: [] for section in TIMELINE_SECTIONS} for pk in ids
    }
    for section, fields in TIMELINE_SECTIONS.items():
        model = Patient._meta.get_field(section).related_model
        # No ORDER BY: Timeline puts every section in its canonical order itself.
        qs = model.objects.filter(patient_id__in=ids).order_by()
        if section == "lab_results" and _epoch_read(qs.db):
            _lab_rows_by_epoch(qs, fields, rows, connections[qs.db].timezone)
            continue
        for patient_id, *values in qs.values_list("patient_id", *fields):
            rows[patient_id][section].append(tuple(values))
    zones: dict[int, object] = {}
    for center in Center.objects.filter(patients__pk__in=ids).distinct():
        zones[center.pk] = center.tzinfo
    read = []
    for pk, center_id, study_id, birth_date in (
        Patient.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "center_id", "study_id", "date_of_birth")
    ):
        timeline = timeline_build(
            patient_ref=study_id, birth_date=birth_date, tz=zones[center_id], rows=rows[pk]
        )
        read.append(PatientTimeline(pk, center_id, timeline))
    return read


class _EpochMicroseconds(Func):
    """A timestamptz as whole microseconds since 1970-01-01 UTC (exact: timestamptz stores
    microseconds, and EXTRACT(EPOCH ...) is numeric since PostgreSQL 14)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_read(alias: str) -> bool:
    return settings.USE_TZ and connections[alias].vendor == "postgresql"


def _lab_rows_by_epoch(qs, fields: tuple[str, ...], rows: dict, zone) -> None:
    """The lab rows of `timelines_read` with each collection time read as an integer (PostgreSQL
    sends it, psycopg reads it in C) and made the same aware datetime Django would return (in the
    connection's zone, UTC by default): psycopg parsed the text of every timestamptz in Python,
    a third of reading a registry's timelines."""
    at = fields.index("collected_at")
    read = [*fields[:at], "collected_us", *fields[at + 1 :]]
    in_utc = zone is UTC
    for patient_id, *values in qs.annotate(
        collected_us=_EpochMicroseconds("collected_at")
    ).values_list("patient_id", *read):
        moment = _EPOCH + timedelta(microseconds=values[at])
        values[at] = moment if in_utc else moment.astimezone(zone)
        rows[patient_id]["lab_results"].append(tuple(values))


@dataclass(frozen=True)
class AlertingPolicy:
    """A center's alerting settings in force: its own values, else the registry-wide settings."""

    stale_after_days: int
    escalate_after_hours: int
    leads_after_hours: int


def alerting_policies(center_ids: Iterable[int]) -> dict[int, AlertingPolicy]:
    """Each center's AlertingPolicy (one query for all; once in a `reads_shared` scope)."""
    center_ids = list(center_ids)
    own = read_shared(
        ("alerting", frozenset(center_ids)),
        lambda: {a.center_id: a for a in CenterAlerting.objects.filter(center_id__in=center_ids)},
    )

    def pick(row, name, setting):
        value = getattr(row, name, None) if row is not None else None
        return value if value is not None else getattr(settings, setting)

    return {
        pk: AlertingPolicy(
            stale_after_days=pick(own.get(pk), "stale_after_days", "ALERT_STALE_AFTER_DAYS"),
            escalate_after_hours=pick(
                own.get(pk), "escalate_after_hours", "ALERT_ESCALATE_AFTER_HOURS"
            ),
            leads_after_hours=pick(
                own.get(pk), "leads_after_hours", "ALERT_ESCALATE_LEADS_AFTER_HOURS"
            ),
        )
        for pk in center_ids
    }


def rule_params_for(center, *, at: datetime | None = None) -> RuleParams:
    """The center's parameters in force (`at` None: the current version), else the
    registry-wide ones, else the defaults (`patients.versioned.settings_in_force`)."""
    return setting_in_force(RuleParameterSet, center, at=at)


def params_in_force_for_centers(
    center_ids: Iterable[int | None], *, at: datetime | None = None
) -> dict[int | None, RuleParams]:
    """`rule_params_for` for many centers in one query: what the sweep, the preview and the
    worklist read (once in a `reads_shared` scope)."""
    wanted = frozenset(center_ids)
    return read_shared(
        ("rule params", wanted, at), lambda: settings_in_force(RuleParameterSet, wanted, at=at)
    )


def detectable_bcell_result_ids(patient_ids: Iterable[int]) -> set[int]:
    """The ids of the PB B-cell results whose sample is detectable by the definition in force for
    the patient's center (`monitoring.rules.recovery.is_detectable`), baseline counts included:
    what the patient pages mark as B cells seen. One query per timeline section and one for the
    parameters, for any number of patients."""
    from monitoring.rules.recovery import is_detectable

    reads = timelines_read(patient_ids)
    params = params_in_force_for_centers({read.center_id for read in reads})
    found: set[int] = set()
    for read in reads:
        timeline = read.timeline
        first = timeline.infusions[0].date if timeline.infusions else None
        baseline = Window(
            infusion=InfusionPoint(0, date.min, 0),
            end=first,
            results=tuple(r for r in timeline.results if first is None or r.collected_on < first),
        )
        for window in (baseline, *timeline.windows()):
            for sample in window.bcell_samples():
                if is_detectable(sample, params[read.center_id]):
                    found.update(r.id for r in (sample.absolute, sample.percent) if r is not None)
    return found


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
        qs = qs.active_work()
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
        Alert.objects.filter(patient_id__in=patient_ids)
        .active_work()
        .annotate(severity_rank=SEVERITY_ORDER)
        .order_by("severity_rank", "raised_at")
    )
    for alert in qs:
        alerts[alert.patient_id].append(alert)
    return alerts


def open_alert_count(user) -> tuple[int, int]:
    """(active alerts, of which high) on the patients the user sees: the navigation badge."""
    qs = alerts_visible_to(user).active_work()
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
