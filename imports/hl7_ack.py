"""HL7 v2 on the wire: a message's header (MSH), its ACK (MSA, ERR per problem), the error
codes of HL7 table 0357, and the line ends senders use. No database: `imports.hl7v2` stores
and processes messages, `imports.hl7_obx` reads and places their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
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
