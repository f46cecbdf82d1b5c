"""Store the synthetic demo cohort and the demo users (see `load_demo_cohort`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from demo import cohort as demo
from imports.services import records_import
from monitoring.models import Alert, AlertEvent
from monitoring.services import alert_close
from monitoring.sweep import alerts_sync_many
from patients.ingest.context import Scope
from patients.ingest.records import (
    Batch,
    EventRecord,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
    ResponseRecord,
    SampleRecord,
    TherapyRecord,
    problems_by_key,
)
from patients.models import Center, ClinicianProfile, Patient
from patients.roles import roles_ensure

DEMO_PASSWORD = "carttrack-demo"
CENTERS = [
    ("alpha", "Center Alpha (synthetic)", "Europe/Berlin"),
    ("beta", "Center Beta (synthetic)", "Asia/Shanghai"),
]


def _user(
    username: str,
    *,
    first: str,
    last: str,
    center: Center | None,
    group: Group | None,
    superuser: bool = False,
):
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    user.first_name, user.last_name = first, last
    user.email = f"{username.replace('.', '-')}@example.org"
    user.is_superuser = user.is_staff = superuser
    user.set_password(DEMO_PASSWORD)
    user.save()
    if group:
        user.groups.add(group)
    ClinicianProfile.objects.update_or_create(user=user, defaults={"center": center})
    return user


def demo_users_ensure(centers: dict[str, Center]) -> list[tuple[str, str]]:
    roles = roles_ensure()
    users = [
        (
            "dr.alpha",
            "hematologist at Center Alpha",
            _user(
                "dr.alpha",
                first="Anna",
                last="Albrecht",
                center=centers["alpha"],
                group=roles["clinician"],
            ),
        ),
        (
            "dr.beta",
            "hematologist at Center Beta",
            _user(
                "dr.beta", first="Bo", last="Bai", center=centers["beta"], group=roles["clinician"]
            ),
        ),
        (
            "registry",
            "registry staff, reads every center",
            _user("registry", first="Rae", last="Registry", center=None, group=roles["registry"]),
        ),
        (
            "admin",
            "administrator (Django admin)",
            _user("admin", first="Ada", last="Admin", center=None, group=None, superuser=True),
        ),
    ]
    return [(username, role) for username, role, _user_obj in users]


def demo_batch(cohort: list[demo.DemoPatient]) -> Batch:
    """The generated cohort as import records (one sample per collection day)."""
    batch = Batch()
    for d in cohort:
        place = d.study_id
        batch.patients.append(
            PatientRecord(
                place=place,
                study_id=d.study_id,
                center_code=d.center_code,
                sex=d.sex,
                date_of_birth=d.date_of_birth,
                ph_positive=d.ph_positive,
                is_synthetic=True,
                mrn=f"SYN{d.study_id.rpartition('-')[2]}",  # DEMO-001: SYN001
                full_name=f"Synthetic {d.study_id}",
            )
        )
        batch.infusions.append(
            InfusionRecord(
                place=f"{place} infusion 1",
                study_id=d.study_id,
                infusion_date=d.infusion_date,
                infusion_number=1,
                product=d.product,
                dose_cells_per_kg=d.dose,
                lymphodepletion="fludarabine + cyclophosphamide",
            )
        )
        if d.second_infusion_day is not None:
            batch.infusions.append(
                InfusionRecord(
                    place=f"{place} infusion 2",
                    study_id=d.study_id,
                    infusion_date=d.on(d.second_infusion_day),
                    infusion_number=2,
                    product=d.product,
                    dose_cells_per_kg=d.dose,
                )
            )
        samples: dict[int, SampleRecord] = {}
        for lab in d.labs:
            if lab.day not in samples:
                tz = ZoneInfo(dict((c, z) for c, _n, z in CENTERS)[d.center_code])
                samples[lab.day] = SampleRecord(
                    place=f"{place} day {lab.day}",
                    study_id=d.study_id,
                    collected_at=datetime.combine(d.on(lab.day), time(8, 30), tzinfo=tz),
                )
            sample = samples[lab.day]
            sample.values.append(
                LabValueRecord(
                    place=f"{sample.place} {lab.analyte}",
                    analyte=lab.analyte,
                    value=lab.value,
                    unit=lab.unit,
                    qualifier=lab.qualifier,
                    method=lab.method,
                )
            )
        batch.samples += samples.values()
        batch.responses += [
            ResponseRecord(
                place=f"{place} response day {day}",
                study_id=d.study_id,
                assessed_on=d.on(day),
                response=response,
                mrd_status=mrd,
            )
            for day, response, mrd in d.responses
        ]
        batch.events += [
            EventRecord(
                place=f"{place} {kind} day {day}",
                study_id=d.study_id,
                kind=kind,
                event_date=d.on(day),
                **details,
            )
            for day, kind, details in d.events
        ]
        batch.therapies += [
            TherapyRecord(
                place=f"{place} therapy day {day}",
                study_id=d.study_id,
                start_date=d.on(day),
                category=category,
                agent=agent,
                agent_detail=detail,
            )
            for day, category, agent, detail in d.therapies
        ]
    return batch


def demo_cohort_load(
    *, today: date, reset: bool = False, seed: int = demo.SEED, live: bool = True
) -> dict[str, int]:
    """Store the demo cohort once; with reset, replace the synthetic patients first.

    Dated relative to ``today`` (the loading day; tests pass a fixed one): the cohort's last day
    is the day before, every patient's days after infusion as generated (`demo.dated`), and with
    ``live`` a few patients in their first weeks today (`demo.live_patients`). Through the one
    import path (validation, audit history, each patient's alerts once). The cohort is synthetic
    and exists to show the product, so its findings are raised as current (`history_is_news`:
    the worklist shows them, as it would for a live registry), but nobody is e-mailed
    (`notify=False`); each alert is then dated on its finding's day, not on the loading day.
    """
    with transaction.atomic():
        centers = {
            code: Center.objects.update_or_create(
                code=code, defaults={"name": name, "time_zone": tz}
            )[0]
            for code, name, tz in CENTERS
        }
        demo_users_ensure(centers)
        if reset:
            Patient.objects.filter(is_synthetic=True).delete()
        elif Patient.objects.filter(is_synthetic=True).exists():
            return {"patients": 0}
        doctors = {
            "alpha": get_user_model().objects.get(username="dr.alpha"),
            "beta": get_user_model().objects.get(username="dr.beta"),
        }
        cohort = demo.dated(demo.generate_cohort(seed), today)
        newcomers = demo.live_patients(today) if live else []
        scope = Scope(user=None, patients=Patient.objects.all(), centers=centers)
        outcome = records_import(
            batch=demo_batch(cohort + newcomers), scope=scope, notify=False, history_is_news=True
        )
        if not outcome.ok:
            raise ValidationError(problems_by_key(outcome.problems))
        if newcomers:  # the rules as of the loading day (the import's are as of the clock's)
            alerts_sync_many(
                patient_ids=Patient.objects.filter(
                    study_id__in=[p.study_id for p in newcomers]
                ).values_list("pk", flat=True),
                as_of=today,
                notify=False,
                history_is_news=True,
            )
        for d in cohort + newcomers:  # after the import, so that nobody is told about the past
            Patient.objects.get(study_id=d.study_id).hematologists.add(doctors[d.center_code])
        _close_demo_alerts(doctors)
        _date_demo_alerts()
    return {
        "patients": outcome.counts["patients"] - len(newcomers),
        "live": len(newcomers),
        "labs": outcome.counts["lab_results"],
    }


RESULTS_BACK = time(14, 30)  # a demo sample collected at 08:30 is reported the same afternoon


def _close_demo_alerts(doctors) -> None:
    """Close the early-regeneration alerts that the recorded therapy answered, as the treating
    hematologist would have; the ones without a recorded decision stay open for the demo."""
    for alert in Alert.objects.filter(
        rule="early_regeneration", patient__is_synthetic=True
    ).select_related("patient__center"):
        therapy = alert.patient.therapies.order_by("start_date").first()
        if therapy is None or therapy.category not in ("anti_leukemic", "immunomodulatory"):
            continue
        alert_close(
            alert=alert,
            user=doctors[alert.patient.center.code],
            outcome=therapy.category,
            therapy=therapy,
            reason="Recorded with the synthetic demo cohort.",
        )


def finding_date(alert: Alert) -> date | None:
    """The day of an alert's finding: the day the rule found it (its infusion's day 0 plus the
    alert's day), or its latest evidence's collection when later (a confirming sample raises an
    alert dated on the first of the two)."""
    dates = [date.fromisoformat(e["date"][:10]) for e in alert.evidence if e.get("date")]
    if alert.infusion is not None:
        dates.append(alert.infusion.infusion_date + timedelta(days=alert.day))
    return max(dates, default=None)


def _date_demo_alerts() -> None:
    """Each demo alert raised (and its sample arrived) on its finding's day, closed on the day
    the therapy that answered it started: the demo's past reads like a registry's past."""
    now = timezone.now()
    for alert in Alert.objects.filter(patient__is_synthetic=True).select_related(
        "infusion", "therapy", "patient__center"
    ):
        on = finding_date(alert)
        if on is None:
            continue
        tz = alert.patient.center.tzinfo
        raised = min(datetime.combine(on, RESULTS_BACK, tzinfo=tz), now)
        alert.raised_at = alert.arrived_at = raised
        if alert.closed_at is not None:
            closed = alert.therapy.start_date if alert.therapy else on
            alert.closed_at = min(max(datetime.combine(closed, time(10), tzinfo=tz), raised), now)
            if alert.acknowledged_at is not None:
                alert.acknowledged_at = alert.closed_at
        Alert.objects.filter(pk=alert.pk).update(
            raised_at=alert.raised_at,
            arrived_at=alert.arrived_at,
            closed_at=alert.closed_at,
            acknowledged_at=alert.acknowledged_at,
        )
        events = AlertEvent.objects.filter(alert=alert)
        events.filter(old_status="").update(created_at=alert.raised_at)
        if alert.closed_at is not None:
            events.exclude(old_status="").update(created_at=alert.closed_at)
