"""Store the synthetic demo cohort and the demo users (see `load_demo_cohort`)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from demo import cohort as demo
from imports.services import records_import
from monitoring.models import Alert
from monitoring.services import alert_close
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


def demo_cohort_load(*, reset: bool = False, seed: int = demo.SEED) -> dict[str, int]:
    """Store the demo cohort once; with reset, replace the synthetic patients first.

    Through the one import path (validation, audit history, each patient's alerts once). The
    cohort is synthetic and exists to show the product, so its findings are raised as current
    (`history_is_news`: the worklist shows them, as it would for a live registry), but nobody is
    e-mailed (`notify=False`).
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
        cohort = demo.generate_cohort(seed)
        scope = Scope(user=None, patients=Patient.objects.all(), centers=centers)
        outcome = records_import(
            batch=demo_batch(cohort), scope=scope, notify=False, history_is_news=True
        )
        if not outcome.ok:
            raise ValidationError(problems_by_key(outcome.problems))
        for d in cohort:  # after the import, so that nobody is told about the demo's past
            Patient.objects.get(study_id=d.study_id).hematologists.add(doctors[d.center_code])
        _close_demo_alerts(doctors)
    return {"patients": outcome.counts["patients"], "labs": outcome.counts["lab_results"]}


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
