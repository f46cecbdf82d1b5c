"""The hematologist's worklist: what needs attention today, read-only (a selector module).

Open high alerts first (newest first), then the patients inside an active window (day 0–45 of
their latest infusion, alive and relapse-free) with their last B-cell count, the days since it and
whether a count is due, then the alerts raised in the last two weeks. Historical alerts (imported
history) are never work to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from monitoring import texts
from monitoring.models import HIGH, Alert
from monitoring.selectors import SEVERITY_ORDER, alerts_visible_to, rule_params_for
from patients import units
from patients.days import local_date
from patients.models import Infusion, LabResult
from patients.selectors import ClinicalStatus, clinical_status_by_patient, patients_visible_to

ACTIVE_WINDOW_DAYS = 45
RECENT_DAYS = 14
RECENT_LIMIT = 10


@dataclass
class WindowPatient:
    patient: object
    infusion_number: int
    day: int
    last_count: LabResult | None
    days_since_count: int | None
    count_due: bool
    alerts: list = field(default_factory=list)


@dataclass
class Worklist:
    high_alerts: list[Alert]
    in_window: list[WindowPatient]
    recent_alerts: list[Alert]

    @property
    def counts_due(self) -> int:
        return sum(1 for row in self.in_window if row.count_due)


def with_course_status(alerts: list[Alert]) -> list[Alert]:
    """Mark each alert whose patient relapsed or died after its finding: its recommendation is
    then history, and what it still needs is an outcome (`alert.course_ended`)."""
    statuses = clinical_status_by_patient(list({a.patient_id for a in alerts}))
    for alert in alerts:
        status = statuses.get(alert.patient_id, ClinicalStatus())
        alert.course_status = status
        alert.course_ended = None
        if status.state != "alive":
            when = status.died_on if status.state == "died" else status.relapsed_on
            from patients.formats import human_date

            alert.course_ended = texts.COURSE_ENDED_ADVICE[status.state].format(
                date=human_date(when)
            )
    return alerts


def worklist(user, *, now=None) -> Worklist:
    now = now or timezone.now()
    work = alerts_visible_to(user).active_work()
    high = list(
        work.filter(severity=HIGH)
        .annotate(
            n_responsible=Count(
                "patient__hematologists",
                filter=Q(patient__hematologists__is_active=True),
                distinct=True,
            )
        )
        .select_related("patient")
        .order_by("-raised_at", "-pk")
    )
    # Still to act on, raised lately, below high severity (high ones are listed above).
    recent = list(
        work.filter(raised_at__gte=now - timedelta(days=RECENT_DAYS))
        .exclude(severity=HIGH)
        .annotate(severity_rank=SEVERITY_ORDER)
        .order_by("severity_rank", "-raised_at", "-pk")[:RECENT_LIMIT]
    )
    return Worklist(
        high_alerts=with_course_status(high),
        in_window=_in_window(user, now),
        recent_alerts=with_course_status(recent),
    )


# "No responsible clinician" until one is set (CLINICAL.md section 4): active hematologists.
_RESPONSIBLE = Count("hematologists", filter=Q(hematologists__is_active=True), distinct=True)


def _in_window(user, now) -> list[WindowPatient]:
    # A day of slack either side: the exact day is computed in each center's time zone below.
    earliest = (now - timedelta(days=ACTIVE_WINDOW_DAYS + 1)).date()
    patients = list(
        patients_visible_to(user)
        .annotate(latest_infusion=Max("infusions__infusion_date"), n_responsible=_RESPONSIBLE)
        .filter(latest_infusion__gte=earliest)
        .order_by("study_id")
    )
    ids = [p.pk for p in patients]
    statuses = clinical_status_by_patient(ids)
    numbers = dict(
        Infusion.objects.filter(patient_id__in=ids)
        .values("patient_id")
        .annotate(n=Max("infusion_number"))
        .values_list("patient_id", "n")
    )
    last_counts: dict[int, LabResult] = {}
    for lab in LabResult.objects.filter(patient_id__in=ids, analyte=units.PB_BCELL_ABS).order_by(
        "patient_id", "-collected_at"
    ):
        last_counts.setdefault(lab.patient_id, lab)
    active_alerts: dict[int, list] = {pk: [] for pk in ids}
    for alert in Alert.objects.filter(patient_id__in=ids).active_work():
        active_alerts[alert.patient_id].append(alert)
    params_by_center: dict[int, object] = {}
    rows = []
    for patient in patients:
        tz = patient.center.tzinfo
        today: date = now.astimezone(tz).date()
        day = (today - patient.latest_infusion).days
        if not 0 <= day <= ACTIVE_WINDOW_DAYS or statuses[patient.pk].state != "alive":
            continue
        if patient.center_id not in params_by_center:
            params_by_center[patient.center_id] = rule_params_for(patient.center)
        due_after = params_by_center[patient.center_id].count_due_days
        last = last_counts.get(patient.pk)
        last_on = local_date(last.collected_at, tz) if last else None
        if last_on is not None and last_on < patient.latest_infusion:
            last_on = None  # a count before this infusion says nothing about this window
        since = (today - last_on).days if last_on else None
        rows.append(
            WindowPatient(
                patient=patient,
                infusion_number=numbers.get(patient.pk, 1),
                day=day,
                last_count=last if last_on else None,
                days_since_count=since,
                count_due=day >= 1 and (since is None or since > due_after),
                alerts=active_alerts[patient.pk],
            )
        )
    rows.sort(key=lambda r: (not r.count_due, -r.day))
    return rows
