"""One entry of a FHIR Bundle as judged: its fate, its messages and, for a result, what to store.

`imports.fhir_read` and `imports.fhir_observation` judge the entries; `imports.fhir_import`
acts on their fates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from patients.ingest.records import LabValueRecord

# What happens to an entry (FhirEntry.fate).
PATIENT, RESULT, SKIPPED, KEPT_OUT, HOLD, WITHDRAW, ERROR = (
    "patient",
    "result",
    "skipped",
    "kept_out",
    "hold",
    "withdraw",
    "error",
)
# The entry index at the start of a message's expression (FhirEntry.place).
ENTRY_PLACE = re.compile(r"^entry\[(\d+)\]")


@dataclass
class FhirEntry:
    """One entry of a Bundle as judged: its fate and, for a result, what to store."""

    index: int
    resource_type: str
    fate: str
    messages: list[tuple[str, str]] = field(default_factory=list)  # (expression, text)
    study_id: str = ""
    collected_at: datetime | None = None
    value: LabValueRecord | None = None
    identifier: tuple[str, str] | None = None
    status: str = ""
    code_shown: str = ""
    subject_shown: str = ""
    # For a result that cannot be placed (HOLD): why (imports.models' held reasons), and the
    # Observation as sent with its code, value, unit and time as text for the held queue.
    hold_reason: str = ""
    source: object = None
    sent_time: str = ""

    def hold(self, reason: str, expression: str, text: str) -> FhirEntry:
        self.fate, self.hold_reason = HOLD, reason
        return self.say(expression, text)

    def keep_out(self, expression: str, text: str) -> FhirEntry:
        """The entry is reported and not imported (not final, no value, nothing to withdraw)."""
        self.fate = KEPT_OUT
        return self.say(expression, text)

    def refuse(self, expression: str, text: str) -> FhirEntry:
        """The entry is an error (the sender must correct it), saying why."""
        self.fate = ERROR
        return self.say(expression, text)

    @property
    def place(self) -> str:
        return f"entry[{self.index}].resource"

    def say(self, expression: str, text: str) -> FhirEntry:
        self.messages.append((f"{self.place}{expression}", text))
        return self
