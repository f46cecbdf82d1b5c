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
from monitoring.engine import window_statuses
from monitoring.models import HIGH, Alert
from monitoring.params import format_decimal
from monitoring.rules.recovery import count_status, is_detectable
from monitoring.selectors import (
    SEVERITY_ORDER,
    alerts_visible_to,
    params_in_force_for_centers,
    timelines_read,
)
from patients.models import LabResult
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
    last_count_text: str = ""  # a count from % × ALC; empty when the stored value is shown
    last_count_detectable: bool = False  # by the center's definition of "detectable"


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

            alert.course_ended = str(texts.COURSE_ENDED_ADVICE[status.state]).format(
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
    """Patients inside their latest infusion's window today, with the last B-cell count and
    whether one is due, decided by the count-due rule's own function (`count_status`) on the
    timeline the rules read, with each center's parameters in force."""
    # The versions in force now (the current ones), as the sweep that raises the alerts reads.
    params = params_in_force_for_centers(
        patients_visible_to(user).order_by().values_list("center_id", flat=True).distinct()
    )
    longest = max((p.window_days for p in params.values()), default=ACTIVE_WINDOW_DAYS)
    # A day of slack either side: the exact day is computed in each center's time zone below.
    earliest = (now - timedelta(days=max(longest, ACTIVE_WINDOW_DAYS) + 1)).date()
    patients = list(
        patients_visible_to(user)
        .annotate(latest_infusion=Max("infusions__infusion_date"), n_responsible=_RESPONSIBLE)
        .filter(latest_infusion__gte=earliest)
        .order_by("study_id")
    )
    ids = [p.pk for p in patients]
    statuses = clinical_status_by_patient(ids)
    timelines = {read.patient_id: read.timeline for read in timelines_read(ids)}
    active_alerts: dict[int, list] = {pk: [] for pk in ids}
    for alert in Alert.objects.filter(patient_id__in=ids).active_work():
        active_alerts[alert.patient_id].append(alert)
    found = []
    for patient in patients:
        today: date = now.astimezone(patient.center.tzinfo).date()
        center_params = params[patient.center_id]
        day = (today - patient.latest_infusion).days
        if not 0 <= day <= center_params.window_days or statuses[patient.pk].state != "alive":
            continue
        known = timelines[patient.pk].until(today)
        window = known.windows()[-1]
        status = count_status(window, center_params, as_of=today)
        # The rule's eligibility too: a window whose response was PR/NR/PD, or whose monitoring
        # ended, raises no count-due reminder, so the worklist calls no count due either.
        monitored = next(s for s in window_statuses(known) if s.infusion_id == window.infusion_id)
        due = status.due and monitored.eligible and monitored.monitored_until is None
        found.append((patient, window, status, due, center_params))
    shown_ids = [
        (s.last.absolute or s.last.percent).id for _, _, s, _, _ in found if s.last is not None
    ]
    labs = LabResult.objects.in_bulk(shown_ids)
    rows = []
    for patient, window, status, due, center_params in found:
        last = status.last
        rows.append(
            WindowPatient(
                patient=patient,
                infusion_number=window.infusion.number,
                day=status.day,
                last_count=labs[(last.absolute or last.percent).id] if last else None,
                days_since_count=status.days_since_last_count if last else None,
                count_due=due,
                alerts=active_alerts[patient.pk],
                last_count_text=_count_text(last) if last else "",
                last_count_detectable=bool(last and is_detectable(last, center_params)),
            )
        )
    rows.sort(key=lambda r: (not r.count_due, -r.day))
    return rows


def _count_text(sample) -> str:
    """The last count in cells/µL as the rules read it: measured, or % of lymphocytes × ALC."""
    if sample.absolute is not None or sample.percent.value is None:
        return ""  # the measured count, or a qualifier: shown as stored
    count = sample.count()
    if count is None:
        return f"{format_decimal(sample.percent.value)} % of lymphocytes, no ALC"
    return f"{format_decimal(count)} (% × ALC)"
