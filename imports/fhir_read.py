"""A FHIR R4 Bundle read (parsed and validated with fhir.resources, R4B models), every entry judged.

`bundle_read`, then `imports.fhir_import.bundle_import`: every entry of a Bundle is judged by
FHIR's own semantics and answered; none is an error merely for being there.

- A Patient is matched by its study ID only (`imports.fhir_codes`): a Patient without one is an
  error that names the setting. One not yet stored is created with its sex and birth date only,
  never a name.
- An Observation is judged by `imports.fhir_observation`. Every resource that is not a Patient
  or an Observation (Encounter, Claim, Condition...) is skipped and reported as information.
- A DiagnosticReport's effective time is its results' time when they give none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError as FhirValidationError

from imports.fhir_codes import HISTORY_TAG, code_index, no_study_id_message, study_id_systems
from imports.fhir_entry import ERROR, PATIENT, SKIPPED, FhirEntry
from imports.fhir_observation import effective_time, observation_judge
from patients.ingest.records import PatientRecord

GENDER = {"female": "F", "male": "M"}


@dataclass
class Intake:
    """A Bundle read: its type, each entry judged, the Patients it brings; or why it is not
    a readable Bundle at all (`problems`, by place)."""

    type: str = ""
    entries: list[FhirEntry] = field(default_factory=list)
    patients: list[PatientRecord] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    history: bool = False  # the sender declared the Bundle a backfill (HISTORY_TAG)


def bundle_read(data: dict) -> Intake:
    """Parse a Bundle with fhir.resources and judge every entry (see the module's docstring)."""
    try:
        bundle = Bundle.model_validate(data)
    except FhirValidationError as error:
        problems: dict[str, list[str]] = {}
        for e in error.errors():
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            problems.setdefault(path.lstrip(".") or "bundle", []).append(e["msg"])
        return Intake(problems=problems)
    tags = {(t.system, t.code) for t in ((bundle.meta.tag or []) if bundle.meta else [])}
    intake = Intake(type=bundle.type or "", history=HISTORY_TAG in tags)
    entries = list(enumerate(bundle.entry or []))
    by_reference: dict[str, tuple[int, object]] = {}
    for i, entry in entries:
        if entry.resource is not None:
            for ref in _references_of(entry.fullUrl, entry.resource):
                by_reference[ref] = (i, entry.resource)
    patients = _patients_read(entries, intake)
    report_times = _report_times(entries, by_reference)
    codes = code_index()
    for i, entry in entries:
        judged = _entry_judge(i, entry.resource, patients, codes, report_times.get(i))
        if judged is not None:
            intake.entries.append(judged)
    intake.entries.sort(key=lambda e: e.index)
    return intake


def _entry_judge(i: int, resource, patients: dict, codes: dict, report_time) -> FhirEntry | None:
    """Entry `i` judged; None for a Patient (judged by `_patients_read`)."""
    if resource is None:
        return FhirEntry(i, "", ERROR).say("", "The entry holds no resource.")
    kind = resource.get_resource_type()
    if kind == "Patient":
        return None
    if kind == "DiagnosticReport":
        return FhirEntry(i, kind, SKIPPED).say(
            "", "A DiagnosticReport is read through its Observations (and its time)."
        )
    if kind != "Observation":
        return FhirEntry(i, kind, SKIPPED).say("", f"{kind} is not monitored; skipped.")
    return observation_judge(i, resource, patients=patients, codes=codes, report_time=report_time)


def _references_of(full_url: str | None, resource) -> list[str]:
    refs = [full_url] if full_url else []
    if resource.id:
        refs.append(f"{resource.get_resource_type()}/{resource.id}")
    return refs


def _patients_read(entries, intake: Intake) -> dict[str, str | FhirEntry]:
    """{reference: study ID, or the Patient's entry when it has no study ID}."""
    systems = study_id_systems()
    out: dict[str, str | FhirEntry] = {}
    for i, entry in entries:
        resource = entry.resource
        if resource is None or resource.get_resource_type() != "Patient":
            continue
        chosen = [
            ident.value
            for ident in resource.identifier or []
            if ident.value and ident.system in systems
        ]
        judged = FhirEntry(i, "Patient", PATIENT)
        if not chosen:
            judged.fate = ERROR
            judged.say(".identifier", no_study_id_message())
        else:
            judged.study_id = chosen[0]
            intake.patients.append(
                PatientRecord(
                    place=judged.place,
                    study_id=chosen[0],
                    sex=GENDER.get(resource.gender or "", "U"),
                    date_of_birth=resource.birthDate,
                )
            )
        intake.entries.append(judged)
        for ref in _references_of(entry.fullUrl, resource):
            out[ref] = judged.study_id or judged
    return out


def _report_times(entries, by_reference) -> dict[int, object]:
    """{Observation entry index: its DiagnosticReport's effective time}."""
    out: dict[int, object] = {}
    for _i, entry in entries:
        report = entry.resource
        if report is None or report.get_resource_type() != "DiagnosticReport":
            continue
        moment = effective_time(report)
        if moment is None:
            continue
        for ref in report.result or []:
            found = by_reference.get(ref.reference or "")
            if found is None and ref.reference and entry.fullUrl and "/" in ref.reference:
                base = entry.fullUrl.rsplit("/", 2)[0]  # .../base/DiagnosticReport/101
                found = by_reference.get(f"{base}/{ref.reference}")
            if found is not None:
                out.setdefault(found[0], moment)
    return out
