"""Import a FHIR Bundle read by `imports.fhir_read.bundle_read`, with FHIR's own semantics.

- `transaction`: all or nothing; answered with a `transaction-response` Bundle (one response per
  entry, in order) or, when anything is wrong, a 400 OperationOutcome naming every problem.
- `batch`: each entry judged on its own; answered with a `batch-response` whose failed entries
  carry their OperationOutcome; the others are stored.
- `collection`, `document`, `message`: their monitored Observations, all or nothing, answered with
  an OperationOutcome that counts what was stored, skipped, kept out and held.

Results go through the one import path (`records_import`: plausibility, audit, history, alerts);
a replacement (`amended`/`corrected`) and a withdrawal (`entered-in-error`) go through the
patients' services, so each keeps its audit history and re-evaluates the patient's alerts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from imports.fhir_codes import CONFIRM_HINT
from imports.fhir_entry import (
    ENTRY_PLACE,
    ERROR,
    HOLD,
    KEPT_OUT,
    PATIENT,
    RESULT,
    SKIPPED,
    WITHDRAW,
    FhirEntry,
)
from imports.fhir_observation import BELOW, REPLACING_STATUSES
from imports.fhir_read import Intake
from imports.fhir_write import operation_outcome
from imports.held import held_result_record
from imports.models import UNKNOWN_PATIENT, ObservationLink
from imports.problems import Coded
from imports.services import records_import
from patients.ingest.context import Scope
from patients.ingest.records import Batch, SampleRecord
from patients.services import clinical_record_delete, clinical_record_save

IMPORTED_TYPES = {"transaction", "batch", "collection", "document", "message"}
REPLACED, WITHDRAWN, STORED, ALREADY = "replaced", "withdrawn", "stored", "already"


@dataclass
class Applied:
    """What happened to each entry: its fate (fhir_entry.* or REPLACED, WITHDRAWN, STORED, ALREADY),
    its messages, and the stored result's pk."""

    fates: dict[int, str] = field(default_factory=dict)
    locations: dict[int, str] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # not of one entry
    alerts: dict[str, int] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    notes: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    def note(self, entry: FhirEntry, expression: str, text: str) -> None:
        self.notes.setdefault(entry.index, []).append((f"{entry.place}{expression}", text))


def bundle_import(*, intake: Intake, scope: Scope) -> tuple[int, dict]:
    """(HTTP status, FHIR body) for a read Bundle; writes only what FHIR's semantics allow."""
    if intake.problems:
        return 400, _errors_outcome(
            [(key, text) for key, texts in intake.problems.items() for text in texts]
        )
    if intake.type not in IMPORTED_TYPES:
        return 400, _errors_outcome(
            [
                (
                    "Bundle.type",
                    f"A {intake.type or 'typeless'} Bundle is not imported: send a transaction, "
                    "batch, collection, document or message.",
                )
            ]
        )
    _place_patients(intake, scope)
    if intake.type == "batch":
        return _batch(intake, scope)
    broken = [m for e in intake.entries if e.fate == ERROR for m in e.messages]
    if broken:
        return 400, _errors_outcome(broken)
    with transaction.atomic():
        applied = _apply(intake.entries, intake, scope)
        if applied.errors:
            transaction.set_rollback(True)
            return 400, _errors_outcome(applied.errors)
        _hold(intake, scope)
    if intake.type == "transaction":
        return 200, _response_bundle("transaction-response", intake, applied)
    stored = sum(1 for f in applied.fates.values() if f in (STORED, REPLACED))
    return (201 if stored else 200), _summary_outcome(intake, applied)


def _place_patients(intake: Intake, scope: Scope) -> None:
    """A result for a study ID neither stored (for this sender) nor in the Bundle is held."""
    wanted = {e.study_id for e in intake.entries if e.fate == RESULT}
    known = set(scope.patients.filter(study_id__in=wanted).values_list("study_id", flat=True))
    known |= {p.study_id for p in intake.patients}
    for entry in intake.entries:
        if entry.fate == RESULT and entry.study_id not in known:
            entry.hold(
                UNKNOWN_PATIENT,
                ".subject",
                Coded("held_fhir_unregistered", study_id=entry.study_id),
            )


def _batch(intake: Intake, scope: Scope) -> tuple[int, dict]:
    """Entry by entry: an entry refused by the import checks is answered with its problems and
    the others are imported without it (a few rounds: removing one entry can change no other
    entry's checks except a sample's siblings)."""
    pending = [e for e in intake.entries if e.fate != ERROR]
    failed: dict[int, list[tuple[str, str]]] = {
        e.index: e.messages for e in intake.entries if e.fate == ERROR
    }
    for _round in range(3):
        with transaction.atomic():
            applied = _apply(pending, intake, scope)
            if not applied.errors:
                _hold(intake, scope, entries=pending)
                break
            transaction.set_rollback(True)
        by_entry = _errors_by_entry(applied.errors)
        if not by_entry or None in by_entry:  # a problem of no one entry: refuse them all
            for entry in pending:
                failed[entry.index] = applied.errors
            pending, applied = [], Applied()
            break
        for index, messages in by_entry.items():
            failed[index] = messages
        pending = [e for e in pending if e.index not in failed]
    else:
        for entry in pending:
            failed[entry.index] = [("", "This entry could not be imported with the others.")]
        applied = Applied()
    for index in failed:
        applied.fates[index] = ERROR
    return 200, _response_bundle("batch-response", intake, applied, failed=failed)


def _errors_by_entry(errors: list[tuple[str, str]]) -> dict[int | None, list[tuple[str, str]]]:
    out: dict[int | None, list[tuple[str, str]]] = {}
    for place, text in errors:
        match = ENTRY_PLACE.match(place)
        out.setdefault(int(match[1]) if match else None, []).append((place, text))
    return out


def _apply(entries: list[FhirEntry], intake: Intake, scope: Scope) -> Applied:
    """Replace, withdraw and store what `entries` carry, in the caller's transaction."""
    applied = Applied()
    user = scope.user if getattr(scope.user, "is_authenticated", False) else None
    links = _links(entries, scope)
    new: list[FhirEntry] = []
    for entry in entries:
        link = links.get(entry.identifier) if entry.identifier else None
        if entry.fate == WITHDRAW:
            _withdraw(entry, link, user, applied)
        elif entry.fate == RESULT and link is not None:
            _known(entry, link, user, applied)
        elif entry.fate == RESULT:
            new.append(entry)
        elif entry.fate in (PATIENT, SKIPPED, KEPT_OUT, HOLD):
            applied.fates[entry.index] = entry.fate
    if not applied.errors:
        _store(new, intake, scope, applied)
    return applied


def _links(entries: list[FhirEntry], scope: Scope) -> dict[tuple[str, str], ObservationLink]:
    """The stored results the entries' Observation identifiers name, in the sender's scope."""
    identifiers = [e.identifier for e in entries if e.identifier and e.fate in (RESULT, WITHDRAW)]
    return {
        (link.system, link.value): link
        for link in ObservationLink.objects.filter(
            system__in={s for s, _v in identifiers},
            value__in={v for _s, v in identifiers},
            lab_result__patient__in=scope.patients,
        ).select_related("lab_result")
    }


def _withdraw(entry: FhirEntry, link: ObservationLink | None, user, applied: Applied) -> None:
    """entered-in-error: the stored result it names is deleted (its history keeps it)."""
    if link is None:
        applied.fates[entry.index] = KEPT_OUT
        applied.note(
            entry,
            ".identifier",
            f"No stored result has the identifier {'|'.join(entry.identifier)}: "
            "nothing was withdrawn.",
        )
        return
    clinical_record_delete(instance=link.lab_result, user=user)
    applied.fates[entry.index] = WITHDRAWN
    applied.note(
        entry,
        "",
        "The stored result was withdrawn (entered in error); its history keeps it.",
    )


def _known(entry: FhirEntry, link: ObservationLink, user, applied: Applied) -> None:
    """A result whose identifier is stored: replaced (amended, corrected), already stored (the
    same value and time), or refused (another value under a final status)."""
    if entry.status in REPLACING_STATUSES:
        try:
            _replace(entry, link, user)
        except ValidationError as error:
            for text in error.messages:
                applied.errors.append((entry.place, text))
            return
        applied.fates[entry.index] = REPLACED
        applied.locations[entry.index] = f"Observation/lab-{link.lab_result_id}"
        applied.note(
            entry,
            "",
            f"The stored result was replaced ({entry.status}); its history keeps the old value.",
        )
    elif _same(entry, link.lab_result):
        applied.fates[entry.index] = ALREADY
        applied.locations[entry.index] = f"Observation/lab-{link.lab_result_id}"
        applied.note(entry, "", "This result is already stored; nothing changed.")
    else:
        applied.errors.append(
            (
                f"{entry.place}.status",
                "A result with this identifier is stored with another value or time: "
                "send the change with status corrected (or amended).",
            )
        )


def _store(new: list[FhirEntry], intake: Intake, scope: Scope, applied: Applied) -> None:
    """The new results, one sample per patient and time, and the Bundle's new Patients through
    the one import path; each stored result keeps its Observation identifier."""
    samples: dict[tuple, SampleRecord] = {}
    for entry in new:
        key = (entry.study_id, entry.collected_at)
        if key not in samples:
            samples[key] = SampleRecord(
                place=entry.place, study_id=entry.study_id, collected_at=entry.collected_at
            )
        samples[key].values.append(entry.value)
    batch = Batch(
        patients=list(intake.patients),
        samples=list(samples.values()),
        confirm_hint=CONFIRM_HINT,
    )
    if not batch.samples and not _new_patients(intake, scope):
        return
    outcome = records_import(batch=batch, scope=scope, history=intake.history)
    if not outcome.ok:
        applied.errors = [(p.key, p.message) for p in outcome.problems]
        return
    applied.alerts, applied.created = outcome.alerts, outcome.counts
    stored = {
        (patient.study_id, lab.collected_at, lab.analyte): lab
        for _sample, patient, labs in outcome.samples
        for lab in labs
    }
    for entry in new:
        lab = stored.get((entry.study_id, entry.collected_at, entry.value.analyte))
        if lab is None:
            continue
        applied.fates[entry.index] = STORED
        applied.locations[entry.index] = f"Observation/lab-{lab.pk}"
        if entry.identifier:
            ObservationLink.objects.create(
                system=entry.identifier[0], value=entry.identifier[1], lab_result=lab
            )


def _new_patients(intake: Intake, scope: Scope) -> bool:
    ids = {p.study_id for p in intake.patients}
    return bool(
        ids - set(scope.patients.filter(study_id__in=ids).values_list("study_id", flat=True))
    )


def _same(entry: FhirEntry, lab) -> bool:
    v = entry.value
    return (
        lab.analyte == v.analyte
        and lab.collected_at == entry.collected_at
        and lab.unit == v.unit
        and lab.qualifier == v.qualifier
        and (lab.value is None) == (v.value is None)
        and (v.value is None or lab.value == v.value)
    )


def _replace(entry: FhirEntry, link: ObservationLink, user) -> None:
    lab = link.lab_result
    v = entry.value
    lab.analyte, lab.value, lab.unit, lab.qualifier = v.analyte, v.value, v.unit, v.qualifier
    lab.collected_at = entry.collected_at
    lab.plausibility_confirmed = v.confirmed
    lab._change_reason = f"FHIR Observation {entry.status} ({'|'.join(entry.identifier)})"
    clinical_record_save(instance=lab, user=user)


def _hold(intake: Intake, scope: Scope, entries: list[FhirEntry] | None = None) -> None:
    """Keep each result that cannot be placed in the sender's center's held results
    (imports.held), as sent, with why; it is imported once its patient is registered or its
    code or unit mapped."""
    center = scope.default_center
    for entry in entries if entries is not None else intake.entries:
        if entry.fate != HOLD:
            continue
        if center is None:
            entry.say("", "Not held: your account belongs to no center; send it again from one.")
            continue
        resource = entry.source
        coding = next(iter((resource.code.coding or []) if resource.code else []), None)
        quantity = resource.valueQuantity
        value = ""
        if quantity is not None and quantity.value is not None:
            value = f"{'<' if quantity.comparator in BELOW else ''}{quantity.value}"
        held = held_result_record(
            center=center,
            source="fhir",
            sender=getattr(scope.user, "username", "") or "",
            reason=entry.hold_reason,
            reason_text=entry.messages[-1][1],
            identifier=entry.study_id or entry.subject_shown,
            code_system=(coding.system or "") if coding else "",
            code=(coding.code or "") if coding else "",
            code_display=(coding.display or "") if coding else "",
            value=value,
            unit=((quantity.code or quantity.unit) if quantity else "") or "",
            collected_at_text=entry.sent_time,
            raw=json.loads(resource.model_dump_json()),
        )
        entry.say("", f"Kept in {center.name}'s held results (number {held.pk}) until placed.")


# --- answers ---------------------------------------------------------------------------------

SEVERITY = {
    SKIPPED: ("information", "informational"),
    KEPT_OUT: ("warning", "business-rule"),
    HOLD: ("warning", "not-found"),
    PATIENT: ("information", "informational"),
    STORED: ("information", "informational"),
    REPLACED: ("information", "informational"),
    WITHDRAWN: ("information", "informational"),
    ALREADY: ("information", "duplicate"),
    ERROR: ("error", "invalid"),
}
STATUS = {
    STORED: "201 Created",
    HOLD: "202 Accepted",
    ERROR: "400 Bad Request",
}


def _errors_outcome(errors: list[tuple[str, str]]) -> dict:
    return operation_outcome(
        [("error", "invalid", place, text) for place, text in errors]
        + [("information", "informational", "", "Nothing was saved.")]
    )


def _response_bundle(kind: str, intake: Intake, applied: Applied, failed=None) -> dict:
    failed = failed or {}
    entries = []
    for entry in intake.entries:
        fate = applied.fates.get(entry.index, entry.fate)
        response: dict = {"status": STATUS.get(fate, "200 OK")}
        if entry.index in applied.locations:
            response["location"] = applied.locations[entry.index]
        messages = failed.get(entry.index) or entry.messages + applied.notes.get(entry.index, [])
        if messages:
            severity, code = SEVERITY[fate]
            response["outcome"] = operation_outcome(
                [(severity, code, place, text) for place, text in messages]
            )
        entries.append({"response": response})
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _summary_outcome(intake: Intake, applied: Applied) -> dict:
    """One OperationOutcome: what was stored, and each skipped kind counted once; entries kept
    out or held are named one by one."""
    fates = Counter(applied.fates.get(e.index, e.fate) for e in intake.entries)
    issues = [
        (
            "information",
            "informational",
            "",
            f"Stored {fates[STORED]} result(s), replaced {fates[REPLACED]}, withdrew "
            f"{fates[WITHDRAWN]}; {fates[ALREADY]} already stored. Alerts: "
            f"{applied.alerts.get('news', 0)} new, {applied.alerts.get('historical', 0)} "
            "recorded as history.",
        )
    ]
    skipped = Counter(
        (e.resource_type, e.code_shown if e.resource_type == "Observation" else "")
        for e in intake.entries
        if applied.fates.get(e.index, e.fate) == SKIPPED
    )
    for (kind, code), n in sorted(skipped.items()):
        what = f"{kind} {code}".strip()
        issues.append(("information", "informational", "", f"Skipped {n} × {what}: not monitored."))
    for entry in intake.entries:
        fate = applied.fates.get(entry.index, entry.fate)
        if fate in (KEPT_OUT, HOLD):
            severity, code = SEVERITY[fate]
            messages = entry.messages + applied.notes.get(entry.index, [])
            issues.extend((severity, code, place, text) for place, text in messages)
    return operation_outcome(issues)
