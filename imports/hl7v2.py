"""HL7 v2 ORU^R01 results (v2.3 to v2.5.1), as an MLLP listener receives them.

`hl7_message_receive(raw=...)` is everything one message gets, and returns its ACK:

1. the message is stored and committed (`HL7Message`: raw text, MSH-3/MSH-4, MSH-10, time)
   before anything else, so nothing is lost if the listener stops before acknowledging; a
   message with a stored ACK (a resend after a lost ACK, same MSH-10 and MSH-3/MSH-4) gets the
   same ACK again and imports nothing;
2. it is processed in one transaction that also stores its ACK:
   - AR (rejected) when it cannot be processed at all: not HL7, not ORU^R01, a version outside
     2.3-2.5.1, a sender (MSH-3/MSH-4) with no HL7 feed configured;
   - AE (error) when its content is wrong: an ERR segment per problem names the segment, its
     sequence, the field and the problem, and nothing of the message is imported (the sender
     corrects it and sends it with a new control ID);
   - AA otherwise: final results imported through the one import path (`records_import`),
     corrections (OBX-11 C) replacing the stored value with its history, withdrawals (X, D, W)
     deleting it with its history; preliminary results (P) reported and kept out of the rules;
     results that cannot be placed (unknown patient, unmapped code or unit) held in the
     center's queue (`imports.held`, a warning ERR says so); results of codes the product does
     not monitor (a CBC's hemoglobin) skipped with an information ERR.

Messages stored while others were processed are processed together (`hl7_messages_process`,
the listener's group commit): one import and one alert evaluation for the group, each message
still answered as it would be alone.

The wire format (header, ACK, error codes) is `imports.hl7_ack`; reading and placing the OBX
segments (identifier, code, unit, time) is `imports.hl7_obx`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import hl7
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from carttrack.shared_reads import read_shared, reads_shared
from imports.held import (
    feed_account,
    feed_scope,
    held_result_record,
)
from imports.hl7_ack import (
    DATA_TYPE_ERROR,
    REQUIRED_MISSING,
    SUPPORTED_VERSIONS,
    UNKNOWN_KEY,
    UNSUPPORTED_EVENT,
    UNSUPPORTED_TYPE,
    UNSUPPORTED_VERSION,
    Header,
    Issue,
    Outcome,
    ack_build,
    header_read,
    normalize,
)
from imports.hl7_obx import Placed, Result, obx_place, obx_read
from imports.models import (
    PROCESSED,
    REJECTED,
    UNMAPPED_CODE,
    HL7Feed,
    HL7Message,
)
from imports.services import records_import
from patients.ingest.records import Batch, LabValueRecord, SampleRecord
from patients.models import LabResult
from patients.services import clinical_record_delete, clinical_record_save

logger = logging.getLogger(__name__)

# --- storing --------------------------------------------------------------------------------


def hl7_message_store(*, raw: str) -> HL7Message:
    """Store a message as received and commit it. A message already stored (same MSH-10 and
    MSH-3/MSH-4) is returned as it is, with its ACK if it was acknowledged."""
    header = header_read(raw) or Header()
    defaults = {
        "raw": raw,
        "message_type": f"{header.message_type}^{header.event}".strip("^")[:30],
        "version": header.version[:20],
    }
    key = {
        "sending_application": header.sending_application[:180],
        "sending_facility": header.sending_facility[:180],
        "control_id": header.control_id,
    }
    # A new message is the usual case: insert it straight away (one statement), and read the
    # stored one only when the unique (MSH-3, MSH-4, MSH-10) says it was sent before.
    try:
        with transaction.atomic():
            return HL7Message.objects.create(**key, **defaults)
    except IntegrityError:
        if not header.control_id:
            raise
    return HL7Message.objects.get(**key)


def hl7_message_receive(*, raw: str) -> str:
    """Store, then process, a message; its ACK (the stored one for a message sent again)."""
    raw = normalize(raw)
    message = hl7_message_store(raw=raw)
    if message.ack:
        return message.ack
    return hl7_message_process(message_id=message.pk)


def hl7_message_process(*, message_id: int) -> str:
    """Process a stored message once (its row locked): import, hold, skip; store the ACK."""
    with transaction.atomic():
        message = HL7Message.objects.select_for_update().get(pk=message_id)
        if message.ack:
            return message.ack
        header = header_read(message.raw)
        prepared = _prepare(message, header)
        outcome = prepared if isinstance(prepared, Outcome) else _import(message, prepared)
        _finish(message, header, outcome)
    return message.ack


def hl7_messages_process(*, message_ids: list[int]) -> dict[int, str]:
    """Process stored messages that arrived together (group commit): their final results go
    through one `records_import` (one check of the patients' records, one alert evaluation, one
    transaction) and every message gets the ACK it would get alone.

    A message with corrections or withdrawals, of another feed, or naming a sample another
    message of the group names, is processed on its own afterwards; so is every message if the
    group's import is refused (its problems are then reported message by message). Returns
    {message id: ACK}."""
    done: dict[int, str] = {}
    if len(message_ids) > 1:
        try:
            done = _group_process(message_ids)
        except _GroupRefused:
            done = {}
    for message_id in message_ids:
        if message_id not in done:
            done[message_id] = hl7_message_process(message_id=message_id)
    return done


class _GroupRefused(Exception):
    pass


def _group_process(message_ids: list[int]) -> dict[int, str]:
    done: dict[int, str] = {}
    with transaction.atomic(), reads_shared():
        # Messages first, then (in records_import) their patients, each in pk order: the lock
        # order of hl7_message_process too.
        messages = HL7Message.objects.select_for_update().filter(pk__in=message_ids).order_by("pk")
        grouped: list[tuple[HL7Message, Header | None, Placed]] = []
        samples_named: set[tuple[int, datetime]] = set()
        for message in messages:
            if message.ack:
                done[message.pk] = message.ack
                continue
            header = header_read(message.raw)
            prepared = _prepare(message, header)
            if isinstance(prepared, Outcome):  # refused or wrong: nothing to write
                _finish(message, header, prepared)
                done[message.pk] = message.ack
                continue
            named = {(place.patient.pk, place.collected_at) for _r, place in prepared.finals}
            if (
                prepared.corrections
                or prepared.withdrawals
                or (grouped and prepared.feed.pk != grouped[0][2].feed.pk)
                or named & samples_named
            ):
                continue  # on its own, after this group
            samples_named |= named
            grouped.append((message, header, prepared))
        if not grouped:
            return done
        feed = grouped[0][2].feed
        samples: list[SampleRecord] = []
        for message, _header, placed in grouped:
            samples.extend(_samples(placed.finals, prefix=f"{message.pk} ").values())
        if samples:
            result = records_import(
                batch=Batch(samples=samples, confirm_hint=""),
                scope=feed_scope(center=feed.center, user=feed_account("hl7")),
                history=feed.history,
            )
            if not result.ok:
                raise _GroupRefused  # rolls the whole group back: each message on its own
        for message, header, placed in grouped:
            placed.outcome.imported += len(placed.finals)
            _hold(message, placed)
            _finish(message, header, placed.outcome)
            done[message.pk] = message.ack
    return done


def _finish(message: HL7Message, header: Header | None, outcome: Outcome) -> None:
    message.ack_code = outcome.code
    message.ack = ack_build(header, outcome, ack_id=f"CT{message.pk}")
    message.state = REJECTED if outcome.code == "AR" else PROCESSED
    message.notes = outcome.notes + [
        f"{i.severity} {i.segment}-{i.field} ({i.segment} {i.sequence}): {i.text}"
        for i in outcome.issues
    ]
    message.processed_at = timezone.now()
    message.save()


def _reject(text: str, code: int, segment: str = "MSH", fld: int = 9) -> Outcome:
    return Outcome("AR", [Issue(segment, 1, fld, code, text)])


def _prepare(message: HL7Message, header: Header | None) -> Outcome | Placed:
    """The message read and its results placed, nothing written: an Outcome when it is refused
    or wrong (nothing to import), else what to import, correct, withdraw and hold."""
    if header is None:
        return _reject("Not an HL7 v2 message: it must begin with an MSH segment.", 100, fld=1)
    try:
        parsed = hl7.parse(message.raw)
    except Exception as error:  # python-hl7 raises ParseException and IndexError
        return _reject(f"The message cannot be parsed: {error}.", 100, fld=1)
    if (header.message_type, header.event) != ("ORU", "R01"):
        return _reject(
            f"Only ORU^R01 results are accepted, not {header.message_type}^{header.event}.",
            UNSUPPORTED_TYPE if header.message_type != "ORU" else UNSUPPORTED_EVENT,
        )
    if header.version not in SUPPORTED_VERSIONS:
        return _reject(
            f"HL7 version {header.version or '(none)'} is not accepted: send 2.3 to 2.5.1.",
            UNSUPPORTED_VERSION,
            fld=12,
        )
    if not header.control_id:
        return _reject("MSH-10 (message control ID) is empty.", REQUIRED_MISSING, fld=10)
    feed = read_shared(
        ("hl7 feed", header.sending_application, header.sending_facility),
        lambda: (
            HL7Feed.objects.select_related("center")
            .filter(
                sending_application=header.sending_application,
                sending_facility=header.sending_facility,
                active=True,
            )
            .first()
        ),
    )
    if feed is None:
        return _reject(
            f"No HL7 feed is configured for sending application {header.sending_application!r} "
            f"and facility {header.sending_facility!r}: ask the CARTtrack administrator.",
            UNKNOWN_KEY,
            fld=3,
        )
    message.feed = feed
    results, issues = obx_read(parsed, feed)
    return obx_place(feed, results, issues)


def _import(message: HL7Message, placed: Placed) -> Outcome:
    outcome = placed.outcome
    account = feed_account("hl7")
    try:
        with transaction.atomic():
            _apply(outcome, placed.feed, account, placed)
            if outcome.code == "AE":
                raise _RollBack
    except _RollBack:
        outcome.imported = 0
        return outcome
    _hold(message, placed)
    return outcome


def _hold(message: HL7Message, placed: Placed) -> None:
    """Results that cannot be placed go to the center's queue, each with a warning ERR."""
    outcome, center = placed.outcome, placed.feed.center
    sender = f"{message.sending_application}|{message.sending_facility}"
    for r, reason, text in placed.to_hold:
        held_result_record(
            center=center,
            source="hl7",
            sender=sender,
            reason=reason,
            reason_text=text,
            identifier=r.identifier,
            identifier_kind=placed.feed.identifier_is,
            code_system=r.code_system,
            code=r.code,
            code_display=r.display,
            value=r.value,
            unit=r.unit,
            collected_at_text=r.time_text,
            raw=r.raw,
            hl7_message=message,
        )
        outcome.held += 1
        outcome.issues.append(
            Issue(
                "OBX",
                r.sequence,
                3 if reason == UNMAPPED_CODE else 5,
                UNKNOWN_KEY,
                f"Held, not lost: {text}",
                "W",
            )
        )


class _RollBack(Exception):
    pass


def _stored(place) -> LabResult | None:
    return (
        LabResult.objects.filter(
            patient=place.patient, analyte=place.analyte, collected_at=place.collected_at
        )
        .order_by("pk")
        .first()
    )


def _apply(outcome: Outcome, feed, account, placed: Placed) -> None:
    finals = list(placed.finals)
    for r, place in placed.withdrawals:
        stored = _stored(place)
        if stored is None:
            outcome.notes.append(f"OBX {r.sequence}: withdrawn, but no stored result to withdraw.")
            continue
        clinical_record_delete(instance=stored, user=account)
        outcome.notes.append(f"OBX {r.sequence}: result {stored.pk} withdrawn.")
    for r, place in placed.corrections:
        stored = _stored(place)
        if stored is None:
            finals.append((r, place))  # a correction of a result never received: the result
            continue
        stored.value, stored.qualifier, stored.unit = place.value, place.qualifier, place.unit
        stored.plausibility_confirmed = False
        try:
            clinical_record_save(instance=stored, user=account)
        except ValidationError as error:
            for message in error.messages:
                outcome.issues.append(
                    Issue("OBX", r.sequence, 5, DATA_TYPE_ERROR, f"{r.code}: {message}")
                )
            outcome.code = "AE"
            continue
        outcome.imported += 1
        outcome.notes.append(f"OBX {r.sequence}: result {stored.pk} corrected.")
    if not finals:
        return
    samples = _samples(finals)
    by_place = {f"OBX {r.sequence}": r for r, _place in finals}
    result = records_import(
        batch=Batch(samples=list(samples.values()), confirm_hint=""),
        scope=feed_scope(center=feed.center, user=account),
        history=feed.history,  # a backfill feed: what it raises is history (CLINICAL.md §4)
    )
    if not result.ok:
        for problem in result.problems:
            r = by_place.get(problem.place.split(".")[0])
            fld = {"collected_at": 14, "unit": 6}.get(problem.field, 5)
            outcome.issues.append(
                Issue("OBX", r.sequence if r else 1, fld, DATA_TYPE_ERROR, problem.message)
            )
        outcome.code = "AE"
        return
    outcome.imported += len(result.lab_result_ids)


def _samples(finals: list[tuple[Result, object]], prefix: str = "") -> dict[tuple, SampleRecord]:
    """Final results as the import's samples: one per patient and collection moment."""
    samples: dict[tuple, SampleRecord] = {}
    for r, place in finals:
        key = (place.patient.study_id, place.collected_at)
        where = f"{prefix}OBX {r.sequence}"
        sample = samples.setdefault(
            key, SampleRecord(place=where, study_id=key[0], collected_at=key[1])
        )
        sample.values.append(
            LabValueRecord(
                place=where,
                analyte=place.analyte,
                value=place.value,
                unit=place.unit,
                qualifier=place.qualifier,
            )
        )
    return samples
