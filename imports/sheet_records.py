"""Spreadsheet rows (``imports.spreadsheet.read_rows``) as import records: each cell's text read
as its column's kind, as the center writes it (decimal commas, day-first dates, local times),
with every cell that cannot be read reported by sheet, row, column and value.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from imports.problems import MESSAGES, Coded, CodedError, error_item
from imports.sheets import SHEETS, Column
from imports.spreadsheet import number_text
from patients import numbers
from patients.days import LocalTimeError, at_local_time
from patients.ingest.records import (
    Batch,
    EventRecord,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
    Problem,
    ResponseRecord,
    SampleRecord,
    TherapyRecord,
)
from patients.models import Patient

# Added to the checks' "unusual value" message, in the uploader's language (the job runs in it).
CONFIRM_HINT = MESSAGES["confirm_hint"]


def parse_decimal(text: str | int | float | Decimal) -> Decimal:
    """A number as typed, read by the one parser of the pages and the API (patients.numbers):
    "0,9" is 0.9; "1,234" and "1.234,5" are ambiguous and refused. A number cell's number
    (not text) is exactly its value, checked for its size only."""
    if isinstance(text, float):
        text = Decimal(repr(text))
    try:
        return numbers.parse_decimal(text)
    except numbers.NumberFormatError as error:
        raise ValueError(str(error).rstrip(".")) from None


LOCAL_DATE = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})"
    r"(?:[ T](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)


def _local_written(text: str, order: str) -> datetime | None:
    """A date (and time) as a center's Excel writes it: 02.11.2026 is always day first (dots
    are never month first); 02/11/2026 follows the center's date order, and without one it is
    refused as ambiguous. None when the text is not written so."""
    match = LOCAL_DATE.match(text)
    if match is None:
        return None
    a, b = int(match["a"]), int(match["b"])
    if match["sep"] == "/":
        if order not in ("dmy", "mdy"):
            raise CodedError(
                "date_ambiguous",
                text=text,
                first={"day": a, "month": b if b <= 12 else 0},
                second={"day": b, "month": a if a <= 12 else 0},
            )
        if order == "mdy":
            a, b = b, a
    try:
        return datetime(
            int(match["y"]), b, a, int(match["H"] or 0), int(match["M"] or 0), int(match["S"] or 0)
        )
    except ValueError:
        raise CodedError("not_a_date", text=text) from None


def parse_datetime(text: str, zone: ZoneInfo, order: str = "") -> datetime:
    """A collection time; without an offset it is the center's local time (a date alone: 00:00),
    a time the clocks skip or show twice refused (patients.days.at_local_time)."""
    moment = _local_written(text, order)
    if moment is None:
        try:
            moment = (
                datetime.combine(date.fromisoformat(text), time(0))
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            raise CodedError("datetime_format") from None
    try:
        return at_local_time(moment, zone)
    except LocalTimeError as error:
        raise ValueError(str(error).rstrip(".")) from None


def _parse(column: Column, text: str, zone: ZoneInfo, order: str = ""):
    if text == "":
        return None
    if column.kind == "date":
        local = _local_written(text, order) if isinstance(text, str) else None
        if local is not None:
            return local.date()
        try:
            return (
                date.fromisoformat(text[:10]) if len(text) in (10, 19) else date.fromisoformat(text)
            )
        except (ValueError, TypeError):
            raise CodedError("date_format") from None
    if column.kind == "datetime":
        return parse_datetime(text, zone, order)
    if column.kind == "decimal":
        return parse_decimal(text)
    if column.kind == "int":
        if not text.isdigit():
            raise CodedError("whole_number")
        return int(text)
    if column.kind == "bool":
        if text.lower() not in ("yes", "no", "true", "false", "1", "0"):
            raise CodedError("yes_no")
        return text.lower() in ("yes", "true", "1")
    return text


def _zones(rows: dict, scope) -> dict[str, ZoneInfo]:
    """Each study ID's clinical time zone: its stored center's, its new center's, or the
    importer's."""
    default = scope.default_center.tzinfo if scope.default_center else ZoneInfo(settings.TIME_ZONE)
    ids = {r.get("study_id", "") for sheet in rows.values() for r in sheet}
    zones = {
        p.study_id: p.center.tzinfo
        for p in Patient.objects.filter(study_id__in=ids).select_related("center")
    }
    for row in rows.get("patients", []):
        center = scope.centers.get(row.get("center", ""))
        if center is not None and row.get("study_id") not in zones:
            zones[row["study_id"]] = center.tzinfo
    return {study_id: zones.get(study_id, default) for study_id in ids}


def rows_batch(rows: dict, scope) -> tuple[Batch, list[Problem]]:
    batch, problems = Batch(confirm_hint=CONFIRM_HINT), []
    zones = _zones(rows, scope)
    order = scope.default_center.date_order if scope.default_center else ""
    targets = {
        "patients": (PatientRecord, batch.patients),
        "infusions": (InfusionRecord, batch.infusions),
        "responses": (ResponseRecord, batch.responses),
        "events": (EventRecord, batch.events),
        "therapies": (TherapyRecord, batch.therapies),
    }
    for sheet, sheet_rows in rows.items():
        for index, row in enumerate(sheet_rows, start=2):
            number = row.get("_row", index)  # the spreadsheet's own row number
            if all(v == "" for k, v in row.items() if k != "_row"):
                continue  # an empty line (a number cell, even 0, is not empty)
            place = f"{sheet} row {number}"
            values, bad = {}, False
            zone = zones.get(row.get("study_id", ""), ZoneInfo(settings.TIME_ZONE))
            for column in SHEETS[sheet]:
                text = row.get(column.name, "")
                if column.required and not text:
                    problems.append(Problem(place, column.name, "", Coded("required")))
                    bad = True
                    continue
                try:
                    parsed = _parse(column, text, zone, order)
                except ValueError as error:
                    shown = text if isinstance(text, str) else number_text(text)
                    message = Coded("cannot_read", error=error_item(error))
                    problems.append(Problem(place, column.name, shown, message))
                    bad = True
                    continue
                if parsed is not None:
                    values[column.field or column.name] = parsed
            if bad:
                continue
            if sheet == "labs":
                batch.samples.append(
                    SampleRecord(
                        place=place,
                        study_id=values["study_id"],
                        collected_at=values["collected_at"],
                        values=[
                            LabValueRecord(
                                place=place,
                                analyte=values["analyte"],
                                value=values.get("value"),
                                unit=values.get("unit", ""),
                                qualifier=values.get("qualifier", ""),
                                method=values.get("method", ""),
                                confirmed=values.get("confirmed", False),
                            )
                        ],
                    )
                )
            else:
                record_type, target = targets[sheet]
                target.append(record_type(place=place, **values))
    return batch, problems
