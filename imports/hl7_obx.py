"""The results of an ORU^R01 (OBX, with PID and OBR) read and placed, nothing written.

Each OBX is read through the feed: PID-3 through the feed's identifier type (CX.5) and/or
assigning authority (CX.4); OBX-3 through the center's code map and the shipped LOINC entries;
OBX-6 as UCUM (or a center's alias); OBX-14 (else OBR-7) with its offset, or the center's local
time without one. `obx_place` sorts them into finals, corrections, withdrawals and results to hold,
or refuses the message (AE) with an ERR per problem; `imports.hl7v2` writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hl7

from imports.codes import code_analyte
from imports.held import (
    result_place,
)
from imports.hl7_ack import (
    DATA_TYPE_ERROR,
    REQUIRED_MISSING,
    TABLE_VALUE,
    UNKNOWN_KEY,
    Issue,
    Outcome,
)
from imports.models import (
    UNKNOWN_PATIENT,
    UNREADABLE,
    HL7Feed,
)
from imports.problems import Coded
from patients.days import LocalTimeError, at_local_time

FINAL, CORRECTED, PRELIMINARY = "F", "C", "P"
WITHDRAWN = ("X", "D", "W")  # cannot be obtained, deleted, posted as wrong
# An unmapped code that looks like one the product monitors is held (someone should map it);
# any other unmapped code (hemoglobin, WBC) is skipped with a note.
LOOKS_MONITORED = re.compile(
    r"CD ?19|B[ -]?CELL|B[ -]?LYMPH|LYMPH|MRD|MINIMAL RESIDUAL|\bCAR\b|TRANSGENE", re.IGNORECASE
)


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


def obx_read(parsed, feed: HL7Feed) -> tuple[list[Result], list[Issue]]:
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


def obx_place(feed: HL7Feed, results: list[Result], issues) -> Outcome | Placed:
    """Each OBX read (`_not_read`), then placed (`_placement`): to import as final, correction
    or withdrawal, to hold, or an ERR; the message is refused (AE) when any ERR is an error."""
    center = feed.center
    outcome = Outcome("AA", list(issues))
    to_hold: list[tuple[Result, str, str]] = []
    kinds: dict[str, list[tuple[Result, object]]] = {FINAL: [], CORRECTED: [], "withdrawn": []}
    for r in results:
        what = f"{r.code}" + (f" ({r.display})" if r.display else "")
        analyte = code_analyte(center=center, system=r.code_system, code=r.code)
        issue = _not_read(r, analyte, what)
        place = None
        if issue is None:
            issue, place = _placement(r, feed, analyte, what)
        if issue is not None:
            outcome.issues.append(issue)
        elif place.reason:
            to_hold.append((r, place.reason, place.reason_text))
        else:
            kinds["withdrawn" if r.status in WITHDRAWN else r.status].append((r, place))
    if any(i.severity == "E" for i in outcome.issues):
        outcome.code = "AE"
        return outcome
    return Placed(feed, outcome, kinds[FINAL], kinds[CORRECTED], kinds["withdrawn"], to_hold)


def _not_read(r: Result, analyte: str | None, what: str) -> Issue | None:
    """Why an OBX is not read at all (not monitored, preliminary, an unknown status, a value
    type other than NM/SN), as its ERR; None when it is read."""
    if not analyte and not LOOKS_MONITORED.search(f"{r.code} {r.display}"):
        return Issue("OBX", r.sequence, 3, TABLE_VALUE, f"{what} is not monitored: skipped.", "I")
    if r.status == PRELIMINARY:
        return Issue(
            "OBX",
            r.sequence,
            11,
            TABLE_VALUE,
            f"{what} is preliminary (P): not imported; send the final result.",
            "I",
        )
    if r.status not in (FINAL, CORRECTED, *WITHDRAWN):
        return Issue(
            "OBX",
            r.sequence,
            11,
            TABLE_VALUE,
            f"{what}: result status {r.status or '(empty)'} is not read; F, C, X, D, W and P are.",
        )
    if analyte and r.status not in WITHDRAWN and r.value_type not in ("NM", "SN"):
        return Issue(
            "OBX",
            r.sequence,
            2,
            DATA_TYPE_ERROR,
            f"{what}: value type {r.value_type or '(empty)'} is not read; send NM or SN.",
        )
    return None


def _placement(r: Result, feed: HL7Feed, analyte: str | None, what: str):
    """(ERR, None) when the OBX cannot be used, else (None, its placement): with a `reason`
    when it is to be held (unknown patient, unmapped code or unit)."""
    center = feed.center
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
            text = f"{what}: no collection time (OBX-14 or OBR-7)."
            return Issue(seg, seq or 1, fld, REQUIRED_MISSING, text), None
        return Issue(seg, seq or 1, fld, DATA_TYPE_ERROR, f"{what}: {place.reason_text}"), None
    if place.reason and r.status in WITHDRAWN:
        text = f"{what}: withdrawn, but {place.reason_text[:1].lower()}{place.reason_text[1:]}"
        return Issue("OBX", r.sequence, 11, UNKNOWN_KEY, text, "W"), None
    if place.reason:
        return None, place  # held
    if r.value_type == "SN" and r.value[:1] in (">",):
        text = f"{what}: {r.value!r} above a limit is not a value; send the number."
        return Issue("OBX", r.sequence, 5, DATA_TYPE_ERROR, text), None
    if r.status in (CORRECTED, *WITHDRAWN) and place.collected_at.tzinfo is None:
        try:  # the stored result is found by its moment
            place.collected_at = at_local_time(place.collected_at, center.tzinfo)
        except LocalTimeError as error:
            seg, seq, fld = r.time_field
            return Issue(seg, seq or 1, fld, DATA_TYPE_ERROR, str(error)), None
    return None, place
