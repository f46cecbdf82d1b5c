"""Read-only queries for the patient pages: querysets and plain data, no state changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils.translation import gettext
from simple_history.utils import get_history_model_for_model

from patients import units
from patients.days import ClinicalDay, clinical_day, local_date
from patients.formats import human_date
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)


def patients_visible_to(user) -> QuerySet[Patient]:
    """Users see their own center's patients; registry staff (and superusers) see every center."""
    qs = Patient.objects.select_related("center")
    if user.is_superuser or user.has_perm("patients.view_all_centers"):
        return qs
    profile = getattr(user, "profile", None)
    if profile is None or profile.center_id is None:
        return qs.none()
    return qs.filter(center_id=profile.center_id)


def center_code_restricted_to(user) -> str | None:
    """The one center whose rows a user may take away (exports): None for registry staff and
    superusers (every center), "" for an account attached to no center (nothing)."""
    if user.is_superuser or user.has_perm("patients.view_all_centers"):
        return None
    profile = getattr(user, "profile", None)
    if profile is None or profile.center_id is None:
        return ""
    return profile.center.code


@dataclass
class PatientRow:
    patient: Patient
    infusion_dates: list
    last_bcell: LabResult | None
    last_bcell_day: ClinicalDay | None
    open_alerts: list = field(default_factory=list)
    last_bcell_detectable: bool = False  # by the center's definition (set by the view)


def patient_list(user, *, search: str = "") -> QuerySet[Patient]:
    last_bcell = LabResult.objects.filter(
        patient=OuterRef("pk"), analyte=units.PB_BCELL_ABS
    ).order_by("-collected_at")
    qs = patients_visible_to(user).annotate(last_bcell_id=Subquery(last_bcell.values("pk")[:1]))
    if search:
        qs = qs.filter(Q(study_id__icontains=search.strip()))
    return qs.order_by("study_id")


def patient_rows(patients: list[Patient]) -> list[PatientRow]:
    """Rows for one page of the patient list: last B-cell count with its day post-infusion."""
    ids = [p.pk for p in patients]
    infusions: dict[int, list] = {pk: [] for pk in ids}
    for patient_id, when in (
        Infusion.objects.filter(patient_id__in=ids)
        .order_by("infusion_date")
        .values_list("patient_id", "infusion_date")
    ):
        infusions[patient_id].append(when)
    labs = LabResult.objects.in_bulk([p.last_bcell_id for p in patients if p.last_bcell_id])
    rows = []
    for p in patients:
        lab = labs.get(p.last_bcell_id)
        day = (
            clinical_day(local_date(lab.collected_at, p.center.tzinfo), infusions[p.pk])
            if lab
            else None
        )
        rows.append(PatientRow(p, infusions[p.pk], lab, day))
    return rows


@dataclass
class SampleRow:
    """One sample (one collection time) with its results by analyte."""

    collected_at: object
    local_date: object
    day: ClinicalDay | None
    results: dict[str, LabResult]

    def cells(self, analytes):
        return [self.results.get(code) for code in analytes]


def patient_samples(patient: Patient) -> tuple[list[str], list[SampleRow]]:
    """The labs table: one row per sample, newest first, one column per analyte measured."""
    dates = list(
        patient.infusions.order_by("infusion_date").values_list("infusion_date", flat=True)
    )
    tz = patient.center.tzinfo
    samples: dict = {}
    for result in patient.lab_results.select_related("entered_by").order_by("-collected_at"):
        row = samples.get(result.collected_at)
        if row is None:
            when = local_date(result.collected_at, tz)
            row = samples[result.collected_at] = SampleRow(
                result.collected_at, when, clinical_day(when, dates), {}
            )
        row.results[result.analyte] = result
    measured = {code for row in samples.values() for code in row.results}
    columns = [code for code in units.ANALYTES if code in measured]
    return columns, list(samples.values())


# The clinical records whose history the patient page shows, by the name used in URLs.
AUDITED = {
    "patient": Patient,
    "infusion": Infusion,
    "lab": LabResult,
    "response": ResponseAssessment,
    "event": ClinicalEvent,
    "therapy": PreemptiveTherapy,
}


@dataclass
class Change:
    kind: str
    record_id: int
    record: str
    action: str
    user: object
    when: object
    changes: list[tuple[str, str, str]]  # (field, before, after)


_HIDDEN = {
    "id",
    "patient",
    "canonical_value",
    "canonical_unit",
    "entered_at",
    "entered_by",
    "created_at",
    "mrn",
    "full_name",
}


def patient_history(
    patient: Patient, *, kind: str | None = None, record_id: int | None = None, limit: int = 200
) -> list[Change]:
    """Every create, change and delete of this patient's clinical data, newest first."""
    changes: list[Change] = []
    for name, model in AUDITED.items():
        if kind and name != kind:
            continue
        history = get_history_model_for_model(model)
        rows = (
            history.objects.filter(id=patient.pk)
            if name == "patient"
            else history.objects.filter(patient_id=patient.pk)
        )
        if record_id is not None:
            rows = rows.filter(id=record_id)
        rows = rows.select_related("history_user").order_by("-history_date")[:limit]
        for row in rows:
            diffs = []
            previous = row.prev_record
            if previous is not None and row.history_type == "~":
                delta = row.diff_against(previous)
                for change in delta.changes:
                    if change.field in _HIDDEN:
                        continue
                    diffs.append(
                        (change.field.replace("_", " "), _shown(change.old), _shown(change.new))
                    )
            changes.append(
                Change(
                    kind=name,
                    record_id=row.id,
                    record=_label(row.instance, patient),
                    action={"+": "created", "~": "changed", "-": "deleted"}[row.history_type],
                    user=row.history_user,
                    when=row.history_date,
                    changes=diffs,
                )
            )
    changes.sort(key=lambda c: c.when, reverse=True)
    return changes[:limit]


def _label(instance, patient: Patient) -> str:
    if hasattr(instance, "patient_id"):
        instance.patient = patient  # the page's patient: no query per history row
    return str(instance)


def _shown(value) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):  # a many-to-many field: rows of the through table
        return _people(value)
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, date):
        return human_date(value)
    return str(value)


@dataclass(frozen=True)
class ClinicalStatus:
    """Where a patient's course stands: alive, relapsed (after the latest infusion) or died."""

    died_on: object = None
    relapsed_on: object = None

    @property
    def state(self) -> str:
        return "died" if self.died_on else "relapsed" if self.relapsed_on else "alive"

    @property
    def label(self) -> str:
        if self.died_on:
            return gettext("Died %(date)s") % {"date": human_date(self.died_on)}
        if self.relapsed_on:
            return gettext("Relapsed %(date)s") % {"date": human_date(self.relapsed_on)}
        return gettext("Alive, no relapse recorded")

    @property
    def ended_on(self):
        """The date the CAR-T course's monitoring ended (relapse or death), if it did."""
        return self.relapsed_on or self.died_on


def clinical_status_by_patient(patient_ids: list[int]) -> dict[int, ClinicalStatus]:
    """Each patient's status in two queries: a relapse counts after the latest infusion only
    (a relapse followed by a second CAR-T infusion is the start of a new course)."""
    latest_infusion: dict[int, object] = {}
    for patient_id, when in Infusion.objects.filter(patient_id__in=patient_ids).values_list(
        "patient_id", "infusion_date"
    ):
        latest_infusion[patient_id] = max(when, latest_infusion.get(patient_id, when))
    died: dict[int, object] = {}
    relapsed: dict[int, object] = {}
    for patient_id, kind, when in (
        ClinicalEvent.objects.filter(patient_id__in=patient_ids, kind__in=["relapse", "death"])
        .order_by("event_date")
        .values_list("patient_id", "kind", "event_date")
    ):
        if kind == "death":
            died.setdefault(patient_id, when)
        elif patient_id not in relapsed:
            start = latest_infusion.get(patient_id)
            if start is None or when >= start:
                relapsed[patient_id] = when
    return {
        pk: ClinicalStatus(died_on=died.get(pk), relapsed_on=relapsed.get(pk)) for pk in patient_ids
    }


def window_today(patient: Patient, infusions: list[Infusion], now) -> ClinicalDay | None:
    """Today's clinical day in the patient's center's time zone (None before any infusion)."""
    if not infusions:
        return None
    today = local_date(now, patient.center.tzinfo)
    return clinical_day(today, [i.infusion_date for i in infusions])


def last_bcell_count(samples: list[SampleRow]) -> tuple[SampleRow, LabResult] | None:
    """The newest PB B-cell count of the labs table (samples are newest first)."""
    for sample in samples:
        result = sample.results.get(units.PB_BCELL_ABS)
        if result is not None:
            return sample, result
    return None


def _people(rows: list) -> str:
    """Names for the rows of a many-to-many history (the patient's hematologists)."""
    from django.contrib.auth import get_user_model

    ids = [row.get("user") for row in rows if isinstance(row, dict) and row.get("user")]
    users = get_user_model().objects.in_bulk(ids)
    names = [users[i].get_full_name() or users[i].username for i in ids if i in users]
    return ", ".join(sorted(names)) or "—"
