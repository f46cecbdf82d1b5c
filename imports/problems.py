"""What an import tells a person (spreadsheet problems and notices, held results' reasons), kept
as a code and its parameters and put into words when shown, in the reader's language.

An upload is read by a background job and a held result is kept for weeks: the words written
then are in the language of that moment (the worker's, English), while the page is read later by
a clinician in German or Chinese. So each problem is stored as {"code", "params", "message"}:
`message` is the English text (what machines and older rows have; shown when the code is
unknown), and `problem_text` renders the code with gettext at display time.

Texts sent to laboratory systems (HL7 ACK/ERR segments, FHIR OperationOutcome) stay English: they
use `english`, never the reader's language.
"""

from __future__ import annotations

from django.utils import formats, translation
from django.utils.dates import MONTHS
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy, pgettext

from patients import units

TOO_LARGE = _(
    "The file is too large to import: %(what)s. A spreadsheet may hold at most %(rows)s rows, "
    "%(cells)s cells and %(megabytes)s MB unzipped (settings SPREADSHEET_MAX_ROWS, "
    "SPREADSHEET_MAX_CELLS, SPREADSHEET_MAX_UNZIPPED_BYTES): split it into smaller files."
)

MESSAGES = {
    # the file's shape
    "csv_sheet_missing": _("Say what the CSV file holds."),
    "file_type": _("Upload an .xlsx or a .csv file."),
    "unknown_sheet": _("Unknown sheet; use %(sheets)s (see the template)."),
    "xlsx_unreadable": _("This is not a readable XLSX workbook."),
    "csv_encoding": _("Save the CSV file as UTF-8 (CSV UTF-8 in Excel)."),
    "csv_nul": _(
        "Line %(line)s holds a NUL character (an invisible control character): remove it, or "
        "save the file again as CSV UTF-8 (CSV UTF-8 in Excel)."
    ),
    "csv_unreadable": _("The CSV file cannot be read: %(error)s."),
    "missing_column": _("Missing column."),
    "too_large": TOO_LARGE,
    "too_large_unzipped": _("it unzips to %(megabytes)s MB"),
    "too_large_sheet": _("sheet %(sheet)s holds %(rows)s rows of %(columns)s columns"),
    "too_large_rows": _("more than %(rows)s rows or %(cells)s cells"),
    "too_large_lines": _("it has %(lines)s lines"),
    "too_large_cells": _("it has more than %(cells)s cells"),
    # the cells
    "required": _("Required."),
    "cannot_read": _("Cannot read it: %(error)s."),
    "date_ambiguous": _(
        "%(text)s could be %(first)s or %(second)s: write YYYY-MM-DD, or set the center's date "
        "order (Centers in the admin)"
    ),
    "not_a_date": _("%(text)s is not a date"),
    "date_format": _("write the date as YYYY-MM-DD (or DD.MM.YYYY)"),
    "datetime_format": _("write the time as YYYY-MM-DD HH:MM (or DD.MM.YYYY HH:MM)"),
    "whole_number": _("a whole number"),
    "yes_no": _("yes or no"),
    "confirm_hint": _('If the value is correct, write "yes" in the row\'s confirmed column.'),
    # notices (nothing refused)
    "title_rows": ngettext_lazy(
        "%(sheet)s: row 1 above the header (row %(header_row)s) was read as a title and skipped.",
        "%(sheet)s: rows 1–%(count)s above the header (row %(header_row)s) were read as a title "
        "and skipped.",
        "count",
    ),
    "ignored_columns": ngettext_lazy(
        "%(sheet)s: ignored %(count)s column that is not in the template: %(columns)s.",
        "%(sheet)s: ignored %(count)s columns that are not in the template: %(columns)s.",
        "count",
    ),
    "no_header": _("no header"),
    # background jobs
    "job_unexpected": _("The import failed unexpectedly; nothing was saved."),
    "job_stopped": ngettext_lazy(
        "The worker importing this batch stopped before it finished, %(count)s time (e.g. it "
        "was restarted or ran out of memory); nothing was saved. Upload the file again.",
        "The worker importing this batch stopped before it finished, %(count)s times (e.g. it "
        "was restarted or ran out of memory); nothing was saved. Upload the file again.",
        "count",
    ),
    # held results' reasons
    "held_unknown_patient": _(
        "No patient with %(what)s %(identifier)s at %(center)s: register the patient (the "
        "result is imported then)."
    ),
    "held_two_patients": _("Two patients share the %(what)s %(identifier)s at %(center)s."),
    "held_unmapped_code": _(
        "The code %(code)s is not mapped at %(center)s: add it to the center's code mappings "
        "(the result is imported then)."
    ),
    "held_unreadable_value": _("Value %(value)s: %(error)s"),
    "held_unmapped_unit": _(
        "The unit %(unit)s is not a unit of %(analyte)s the product reads: add a unit alias for "
        "%(center)s (the result is imported then)."
    ),
    "held_unreadable_time": _("The collection time %(time)s cannot be read."),
    "held_fhir_unknown_code": _("Unknown code %(code)s: add it to the center's FHIR mapping."),
    "held_fhir_unknown_unit": _("Unknown or unfitting unit %(unit)s for %(analyte)s."),
    "held_fhir_patient_not_in_bundle": _(
        "The patient %(reference)s is not in the Bundle: it cannot be placed."
    ),
    "held_fhir_unregistered": _(
        "No patient %(study_id)s is registered at your center: register the patient, and the "
        "result is imported from the held results."
    ),
    "held_pid3_missing": _(
        "PID-3 has no identifier of type/authority %(wanted)s (the one this feed is configured "
        "to read): the result is held."
    ),
}
# Words inside parameters, translated when shown: {"word": "mrn"}.
WORDS = {"mrn": _("MRN"), "study_id": _("study ID")}
NUMBERS = {"rows", "cells", "columns", "lines", "line", "megabytes"}


def problem(code: str, /, **params) -> dict:
    """A problem or notice as stored: its code, its parameters and its English text."""
    return {"code": code, "params": params, "message": english(code, params)}


def english(code: str, params: dict) -> str:
    """The text in English: stored beside the code, and what laboratory systems are sent."""
    with translation.override("en"):
        return _render(code, params)


def problem_text(item) -> str:
    """A stored problem in the active language: a plain string (a row stored before problems
    had codes, or a message from the checks) as it is, a coded one rendered now."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return str(item)
    if item.get("code") in MESSAGES:
        try:
            return _render(item["code"], item.get("params") or {})
        except (KeyError, TypeError, ValueError):
            pass  # a stored parameter set that no longer fits: the stored text
    return str(item.get("message", ""))


def _param(name: str, value):
    if isinstance(value, dict) and "code" in value:
        return problem_text(value)
    if isinstance(value, dict) and "word" in value:
        return str(WORDS.get(value["word"], value["word"]))
    if isinstance(value, dict) and "ignored" in value:  # columns: "F (remarks), G (no header)"
        return ", ".join(
            f"{c['column']} ({c['header'] or MESSAGES['no_header']})" for c in value["ignored"]
        )
    if isinstance(value, dict) and "analyte" in value:  # its label, as the product names it
        definition = units.ANALYTES.get(value["analyte"])
        return str(definition.label) if definition else value["analyte"]
    if isinstance(value, dict) and "month" in value:
        month = MONTHS[value["month"]] if value["month"] else "?"
        return pgettext("a day of a month", "%(day)s %(month)s") % {
            "day": value["day"],
            "month": month,
        }
    if name in NUMBERS and isinstance(value, (int, float)):
        return formats.number_format(
            value, 1 if isinstance(value, float) else 0, force_grouping=True
        )
    return value


def _render(code: str, params: dict) -> str:
    values = {name: _param(name, value) for name, value in params.items()}
    return str(MESSAGES[code] % values) if values else str(MESSAGES[code])


class Coded(str):
    """A problem's English message that keeps its code and parameters (a `Problem.message` is a
    string): `item` is what is stored."""

    item: dict

    def __new__(cls, code: str, /, **params):
        item = problem(code, **params)
        text = super().__new__(cls, item["message"])
        text.item = item
        return text


def stored(message: str):
    """A Problem's message as an upload stores it: the coded item, or the text."""
    return getattr(message, "item", None) or {"message": str(message)}


class CodedError(ValueError):
    """A cell's reading error with its code, so the cell's problem can be rendered when shown."""

    def __init__(self, code: str, /, **params):
        self.item = problem(code, **params)
        super().__init__(self.item["message"])


def error_item(error: Exception):
    """What a reading error says: its code when it has one, else its (English) text."""
    if isinstance(error, CodedError):
        return error.item
    return str(error).rstrip(".")
