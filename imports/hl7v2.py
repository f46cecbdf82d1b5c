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

PID-3 is read only through the feed's identifier type (CX.5) and/or assigning authority (CX.4);
OBX-3 through the center's code map and the shipped LOINC entries; OBX-6 as UCUM (or a center's
alias); OBX-14 (else OBR-7) with its offset, or the center's local time without one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import hl7
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imports.codes import code_analyte
from imports.held import (
    feed_account,
    feed_scope,
    held_result_record,
    result_place,
)
from imports.models import (
    PROCESSED,
    REJECTED,
    UNKNOWN_PATIENT,
    UNMAPPED_CODE,
    UNREADABLE,
    HL7Feed,
    HL7Message,
)
from imports.problems import Coded
from imports.services import records_import
from patients.days import LocalTimeError, at_local_time
from patients.ingest.records import Batch, LabValueRecord, SampleRecord
from patients.models import LabResult
from patients.services import clinical_record_delete, clinical_record_save

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
FINAL, CORRECTED, PRELIMINARY = "F", "C", "P"
WITHDRAWN = ("X", "D", "W")  # cannot be obtained, deleted, posted as wrong
# An unmapped code that looks like one the product monitors is held (someone should map it);
# any other unmapped code (hemoglobin, WBC) is skipped with a note.
LOOKS_MONITORED = re.compile(
    r"CD ?19|B[ -]?CELL|B[ -]?LYMPH|LYMPH|MRD|MINIMAL RESIDUAL|\bCAR\b|TRANSGENE", re.IGNORECASE
)
# HL7 table 0357 (message error condition codes)
REQUIRED_MISSING, DATA_TYPE_ERROR, TABLE_VALUE, UNSUPPORTED_TYPE = 101, 102, 103, 200
UNSUPPORTED_EVENT, UNSUPPORTED_VERSION, UNKNOWN_KEY, INTERNAL = 201, 203, 204, 207
ERROR_NAMES = {
    REQUIRED_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE: "Table value not found",
    UNSUPPORTED_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT: "Unsupported event code",
    UNSUPPORTED_VERSION: "Unsupported version id",
    UNKNOWN_KEY: "Unknown key identifier",
    INTERNAL: "Application internal error",
}


@dataclass
class Issue:
    """One ERR segment: where (segment, its sequence in the message, field), what, how bad."""

    segment: str
    sequence: int
    field: int
    code: int
    text: str
    severity: str = "E"  # E error, W warning (held), I information (skipped, preliminary)


@dataclass
class Outcome:
    code: str  # AA, AE, AR
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    imported: int = 0
    held: int = 0


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def normalize(raw: str) -> str:
    """Segments end with a carriage return on the wire; files and some senders use newlines."""
    return raw.replace("\r\n", "\r").replace("\n", "\r").strip("\r \x00") + "\r"


@dataclass
class Header:
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = ""


def header_read(raw: str) -> Header | None:
    """MSH's fields from the text itself (readable even when the rest is not HL7)."""
    first = raw.split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return None
    sep, comp = first[3], first[4]
    fields = first.split(sep)  # fields[1] is MSH-2; MSH-n is fields[n - 1]

    def get(n: int, c: int = 1) -> str:
        value = fields[n - 1] if len(fields) >= n else ""
        parts = value.split(comp)
        return parts[c - 1].strip() if len(parts) >= c else ""

    return Header(
        sending_application=get(3),
        sending_facility=get(4),
        receiving_application=get(5),
        receiving_facility=get(6),
        message_type=get(9),
        event=get(9, 2),
        control_id=get(10)[:200],
        processing_id=get(11) or "P",
        version=get(12),
    )


def ack_build(header: Header | None, outcome: Outcome, *, ack_id: str) -> str:
    """The ACK: MSH, MSA (code, the message's control ID, a summary), one ERR per issue (ERR-1
    for v2.3/2.4 readers, ERR-2 to ERR-8 as v2.5 defines them). Its texts are English, never
    translated (issue 23): a laboratory system and its integration engineers read them, not the
    clinician whose language is active; held results' reasons are English here and shown in the
    reader's language only on the queue page (HeldResult.reason_detail)."""
    h = header or Header()
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                _escape(h.receiving_application or "CARTTRACK"),
                _escape(h.receiving_facility),
                _escape(h.sending_application),
                _escape(h.sending_facility),
                now,
                "",
                "ACK^R01^ACK" if h.event == "R01" else "ACK",
                ack_id,
                _escape(h.processing_id or "P"),
                _escape(h.version if h.version in SUPPORTED_VERSIONS else "2.5.1"),
            ]
        ),
        "|".join(["MSA", outcome.code, _escape(h.control_id), _escape(_summary(outcome))]),
    ]
    for issue in outcome.issues:
        name = ERROR_NAMES.get(issue.code, "")
        location = f"{issue.segment}^{issue.sequence}^{issue.field}"
        segments.append(
            "|".join(
                [
                    "ERR",
                    f"{location}^{issue.code}&{_escape(name)}&HL70357",
                    location,
                    f"{issue.code}^{_escape(name)}^HL70357",
                    issue.severity,
                    "",
                    "",
                    "",
                    _escape(issue.text),
                ]
            )
        )
    return "\r".join(segments) + "\r"


def _summary(outcome: Outcome) -> str:
    if outcome.code == "AR":
        return "Rejected: " + "; ".join(i.text for i in outcome.issues[:1])
    if outcome.code == "AE":
        errors = sum(1 for i in outcome.issues if i.severity == "E")
        return f"Nothing imported: {errors} error(s), see ERR; correct and send again."
    parts = [f"{outcome.imported} imported"]
    if outcome.held:
        parts.append(f"{outcome.held} held (cannot be placed yet, see ERR)")
    skipped = sum(1 for i in outcome.issues if i.severity == "I")
    if skipped:
        parts.append(f"{skipped} not imported (see ERR)")
    return ", ".join(parts)


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
    with transaction.atomic():
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


@dataclass
class Result:
    """One OBX as read: where it is, its code, value, unit, status and time text."""

    sequence: int  # the OBX's position among the message's OBX segments
    set_id: str
    value_type: str
    code_system: str
    code: str
    display: str
    value: str
    unit: str
    status: str
    time_text: str
    time_field: tuple[str, int, int]  # (segment, sequence, field) the time came from
    identifier: str
    raw: str


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
    feed = (
        HL7Feed.objects.select_related("center")
        .filter(
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            active=True,
        )
        .first()
    )
    if feed is None:
        return _reject(
            f"No HL7 feed is configured for sending application {header.sending_application!r} "
            f"and facility {header.sending_facility!r}: ask the CARTtrack administrator.",
            UNKNOWN_KEY,
            fld=3,
        )
    message.feed = feed
    results, issues = _results(parsed, feed)
    return _place(feed, results, issues)


def _field(parsed, segment: str, sequence: int, *path: int) -> str:
    """One (sub)component's text, "" when the message does not have it (python-hl7 raises
    IndexError for a path deeper than the field goes)."""
    while path:
        try:
            return parsed.extract_field(segment, sequence, *path).strip()
        except IndexError:
            if len(path) <= 3:
                return ""
            path = path[:-1]
    return ""


def _identifier(parsed, pid_sequence: int, feed: HL7Feed) -> str:
    """The PID-3 identifier of the feed's type/authority, or "" (never another identifier)."""
    found = []
    repetitions = parsed.segments("PID")[pid_sequence - 1](3)
    count = len(repetitions) if isinstance(repetitions, hl7.Field) else 1
    for rep in range(1, count + 1):
        value = _field(parsed, "PID", pid_sequence, 3, rep, 1)
        authority = _field(parsed, "PID", pid_sequence, 3, rep, 4, 1)
        kind = _field(parsed, "PID", pid_sequence, 3, rep, 5)
        if not value:
            continue
        if feed.identifier_type and kind != feed.identifier_type:
            continue
        if feed.assigning_authority and authority != feed.assigning_authority:
            continue
        found.append(value)
    return found[0] if len(set(found)) == 1 else ""


def _results(parsed, feed: HL7Feed) -> tuple[list[Result], list[Issue]]:
    results: list[Result] = []
    issues: list[Issue] = []
    counts: dict[str, int] = {}
    identifier = ""
    obr_time: tuple[str, tuple] = ("", ("OBR", 0, 7))
    seen_pid = False
    for segment in parsed:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        n = counts[name]
        if name == "PID":
            seen_pid = True
            identifier = _identifier(parsed, n, feed)
        elif name == "OBR":
            obr_time = (_field(parsed, "OBR", n, 7), ("OBR", n, 7))
        elif name == "OBX":
            get = lambda *path, n=n: _field(parsed, "OBX", n, *path)  # noqa: E731
            value_type = get(2)
            value = get(5)
            if value_type == "SN":  # comparator ^ number
                comparator, number = get(5, 1, 1), get(5, 1, 2)
                value = f"{comparator}{number}" if comparator in ("<", "<=") else number
                if comparator and comparator not in ("<", "<=", "="):
                    value = f"{comparator}{number}"
            obx_time = get(14)
            time_text, where = (obx_time, ("OBX", n, 14)) if obx_time else obr_time
            code, system, display = get(3, 1, 1), get(3, 1, 3), get(3, 1, 2)
            alternate = get(3, 1, 4)
            if alternate and not code_analyte(center=feed.center, system=system, code=code):
                if code_analyte(center=feed.center, system=get(3, 1, 6), code=alternate):
                    code, system, display = alternate, get(3, 1, 6), get(3, 1, 5)
            results.append(
                Result(
                    sequence=n,
                    set_id=get(1),
                    value_type=value_type,
                    code_system=system,
                    code=code,
                    display=display,
                    value=value,
                    unit=get(6, 1, 1),
                    status=get(11),
                    time_text=time_text,
                    time_field=where,
                    identifier=identifier,
                    raw=str(segment),
                )
            )
    if not seen_pid:
        issues.append(Issue("PID", 1, 3, REQUIRED_MISSING, "The message has no PID segment."))
    if not results:
        issues.append(Issue("OBX", 1, 3, REQUIRED_MISSING, "The message has no OBX segment."))
    return results, issues


@dataclass
class Placed:
    """A message's results placed (patient, analyte, moment, value), nothing written yet."""

    feed: HL7Feed
    outcome: Outcome
    finals: list[tuple[Result, object]]  # (result, placement)
    corrections: list[tuple[Result, object]]
    withdrawals: list[tuple[Result, object]]
    to_hold: list[tuple[Result, str, str]]  # (result, reason, reason text)


def _place(feed: HL7Feed, results: list[Result], issues) -> Outcome | Placed:
    center = feed.center
    outcome = Outcome("AA", list(issues))
    to_hold: list[tuple[Result, str, str]] = []
    finals: list[tuple[Result, object]] = []  # (result, placement)
    corrections: list[tuple[Result, object]] = []
    withdrawals: list[tuple[Result, object]] = []
    for r in results:
        what = f"{r.code}" + (f" ({r.display})" if r.display else "")
        analyte = code_analyte(center=center, system=r.code_system, code=r.code)
        if not analyte and not LOOKS_MONITORED.search(f"{r.code} {r.display}"):
            outcome.issues.append(
                Issue("OBX", r.sequence, 3, TABLE_VALUE, f"{what} is not monitored: skipped.", "I")
            )
            continue
        if r.status == PRELIMINARY:
            outcome.issues.append(
                Issue(
                    "OBX",
                    r.sequence,
                    11,
                    TABLE_VALUE,
                    f"{what} is preliminary (P): not imported; send the final result.",
                    "I",
                )
            )
            continue
        if r.status not in (FINAL, CORRECTED, *WITHDRAWN):
            outcome.issues.append(
                Issue(
                    "OBX",
                    r.sequence,
                    11,
                    TABLE_VALUE,
                    f"{what}: result status {r.status or '(empty)'} is not read; "
                    "F, C, X, D, W and P are.",
                )
            )
            continue
        if analyte and r.status not in WITHDRAWN and r.value_type not in ("NM", "SN"):
            outcome.issues.append(
                Issue(
                    "OBX",
                    r.sequence,
                    2,
                    DATA_TYPE_ERROR,
                    f"{what}: value type {r.value_type or '(empty)'} is not read; send NM or SN.",
                )
            )
            continue
        place = result_place(
            center=center,
            identifier=r.identifier,
            identifier_kind=feed.identifier_is,
            code_system=r.code_system,
            code=r.code,
            value=r.value if r.status not in WITHDRAWN else "0",
            unit=r.unit,
            collected_at_text=r.time_text,
            analyte=analyte,
        )
        if place.reason == UNKNOWN_PATIENT and not r.identifier:
            wanted = " / ".join(x for x in (feed.identifier_type, feed.assigning_authority) if x)
            place.reason_text = Coded("held_pid3_missing", wanted=wanted)
        if place.reason == UNREADABLE:
            fld = 5 if place.reason_text.startswith("Value") else r.time_field[2]
            seg, seq = ("OBX", r.sequence) if fld == 5 else r.time_field[:2]
            if not r.time_text:
                outcome.issues.append(
                    Issue(
                        seg,
                        seq or 1,
                        fld,
                        REQUIRED_MISSING,
                        f"{what}: no collection time (OBX-14 or OBR-7).",
                    )
                )
            else:
                outcome.issues.append(
                    Issue(seg, seq or 1, fld, DATA_TYPE_ERROR, f"{what}: {place.reason_text}")
                )
            continue
        if place.reason and r.status in WITHDRAWN:
            outcome.issues.append(
                Issue(
                    "OBX",
                    r.sequence,
                    11,
                    UNKNOWN_KEY,
                    f"{what}: withdrawn, but "
                    f"{place.reason_text[:1].lower()}{place.reason_text[1:]}",
                    "W",
                )
            )
            continue
        if place.reason:
            to_hold.append((r, place.reason, place.reason_text))
            continue
        if r.value_type == "SN" and r.value[:1] in (">",):
            outcome.issues.append(
                Issue(
                    "OBX",
                    r.sequence,
                    5,
                    DATA_TYPE_ERROR,
                    f"{what}: {r.value!r} above a limit is not a value; send the number.",
                )
            )
            continue
        if r.status in (CORRECTED, *WITHDRAWN) and place.collected_at.tzinfo is None:
            try:  # the stored result is found by its moment
                place.collected_at = at_local_time(place.collected_at, center.tzinfo)
            except LocalTimeError as error:
                seg, seq, fld = r.time_field
                outcome.issues.append(Issue(seg, seq or 1, fld, DATA_TYPE_ERROR, str(error)))
                continue
        if r.status in WITHDRAWN:
            withdrawals.append((r, place))
        elif r.status == CORRECTED:
            corrections.append((r, place))
        else:
            finals.append((r, place))
    if any(i.severity == "E" for i in outcome.issues):
        outcome.code = "AE"
        return outcome
    return Placed(feed, outcome, finals, corrections, withdrawals, to_hold)


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
