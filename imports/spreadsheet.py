"""Spreadsheets (XLSX with one sheet per record type, or one CSV per record type) as import
records, with every cell that cannot be read reported by sheet, row, column and value.

Reading is tablib's (openpyxl underneath for XLSX); this module only maps columns to fields and
parses the text of each cell. Row numbers are the spreadsheet's own (the header is row 1).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import tablib
from django.conf import settings

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


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text, date, datetime, decimal, int, bool
    required: bool = False
    field: str = ""  # the record's field, when it differs from the column's name
    help: str = ""


SHEETS: dict[str, tuple[Column, ...]] = {
    "patients": (
        Column("study_id", required=True, help="pseudonymous ID: letters, digits, - _ ."),
        Column("center", field="center_code", help="center code; empty: your own center"),
        Column("sex", help="F, M or U"),
        Column("date_of_birth", "date"),
        Column("mrn", help="restricted identifier"),
        Column("full_name", help="restricted identifier"),
        Column("diagnosis"),
        Column("ph_positive", "bool", help="yes / no / empty"),
    ),
    "infusions": (
        Column("study_id", required=True),
        Column("infusion_date", "date", required=True, help="day 0"),
        Column("product", required=True),
        Column("infusion_number", "int", help="empty: numbered by date"),
        Column("target_antigen", help="default CD19"),
        Column("dose_cells_per_kg", "decimal"),
        Column("lymphodepletion"),
    ),
    "labs": (
        Column("study_id", required=True),
        Column(
            "collected_at",
            "datetime",
            required=True,
            help="YYYY-MM-DD HH:MM in the center's time zone, or with an offset",
        ),
        Column("analyte", required=True, help="pb_bcell_abs, pb_bcell_pct, alc, bm_mrd_flow, ..."),
        Column("value", "decimal", help="empty with a qualifier"),
        Column("unit", help="cells/uL, 10^9/L, 10^6/L, % lymphocytes, % cells, fraction, ..."),
        Column("qualifier", help="undetectable or below_lod instead of a value"),
        Column("method"),
        Column(
            "confirmed",
            "bool",
            help="yes: the value was checked and is correct though refused as unusual",
        ),
    ),
    "responses": (
        Column("study_id", required=True),
        Column("assessed_on", "date", required=True),
        Column("response", required=True, help="CR, CRi, PR, NR, PD, NE"),
        Column("mrd_status", help="negative, positive, unknown"),
        Column("notes"),
    ),
    "events": (
        Column("study_id", required=True),
        Column("kind", required=True, help="relapse, death, hsct, last_followup"),
        Column("event_date", "date", required=True),
        Column("relapse_cd19", help="positive, negative, unknown"),
        Column("relapse_site"),
        Column("death_cause"),
        Column("notes"),
    ),
    "therapies": (
        Column("study_id", required=True),
        Column("start_date", "date", required=True),
        Column("category", required=True, help="anti_leukemic, immunomodulatory, other"),
        Column("agent", required=True, help="chemotherapy, targeted, second_cart, interferon, ..."),
        Column("agent_detail"),
        Column("notes"),
    ),
}
CONFIRM_HINT = 'If the value is correct, write "yes" in the row\'s confirmed column.'
FIELD_COLUMNS = {c.field: c.name for cols in SHEETS.values() for c in cols if c.field}


def template(fmt: str, sheet: str = "labs") -> bytes:
    """An empty spreadsheet with the right headers (XLSX: every sheet and a column guide)."""
    if fmt == "csv":
        return tablib.Dataset(headers=[c.name for c in SHEETS[sheet]]).export("csv").encode()
    book = tablib.Databook(
        [
            tablib.Dataset(headers=[c.name for c in columns], title=name)
            for name, columns in SHEETS.items()
        ]
        + [
            tablib.Dataset(
                *[
                    (name, c.name, "yes" if c.required else "", c.kind, c.help)
                    for name, columns in SHEETS.items()
                    for c in columns
                ],
                headers=["sheet", "column", "required", "type", "meaning"],
                title="guide",
            )
        ]
    )
    return book.export("xlsx")


def _is_number_cell(value) -> bool:
    """A cell the spreadsheet holds as a number (openpyxl: int, float or Decimal; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _cell_number(value: int | float | Decimal) -> int | float:
    """A number cell's value as the rows keep it: a JSON number, an integer when it is one
    (an XLSX number is a double, so a Decimal is one too)."""
    value = float(value) if isinstance(value, Decimal) else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number_text(value: int | float | Decimal) -> str:
    """A number cell as plain decimal text, exactly its value: 5e-05 -> "0.00005"."""
    if isinstance(value, float):
        value = int(value) if value.is_integer() else Decimal(repr(value))
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if _is_number_cell(value):
        return _number_text(value)
    return str(value).strip()


def _cell(column: Column | None, value):
    """What the rows keep of a cell: its text, or, in a decimal column, a number cell's number
    (JSON keeps it a number), so it is never read by the rules for numbers typed as text: a
    number cell is one number ("1.234" typed may mean 1234, the number 1.234 cannot)."""
    if column is not None and column.kind == "decimal" and _is_number_cell(value):
        return _cell_number(value)
    return _cell_text(value)


def read_rows(file_name: str, data: bytes, csv_sheet: str = "") -> tuple[dict, list[Problem]]:
    """{sheet: [{column: text}, ...]} from the file (a number cell of a decimal column: its
    number), and problems with its shape."""
    problems: list[Problem] = []
    if file_name.lower().endswith(".xlsx"):
        try:
            book = tablib.Databook().load(io.BytesIO(data), format="xlsx")
        except Exception:
            return {}, [Problem(file_name, "", None, "This is not a readable XLSX workbook.")]
        datasets = [(d.title.strip().lower(), d) for d in book.sheets()]
    elif file_name.lower().endswith(".csv"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return {}, [Problem(file_name, "", None, "Save the CSV file as UTF-8.")]
        if csv_sheet not in SHEETS:
            return {}, [Problem(file_name, "", None, "Say what the CSV file holds.")]
        try:
            datasets = [(csv_sheet, tablib.Dataset().load(text, format="csv"))]
        except tablib.InvalidDimensions:
            return {}, [
                Problem(file_name, "", None, "A row has more cells than the header has columns.")
            ]
    else:
        return {}, [Problem(file_name, "", None, "Upload an .xlsx or a .csv file.")]
    rows: dict[str, list[dict]] = {}
    for name, dataset in datasets:
        if name == "guide" or (name not in SHEETS and not dataset.height):
            continue
        if name not in SHEETS:
            problems.append(
                Problem(
                    name, "", None, f"Unknown sheet; use {', '.join(SHEETS)} (see the template)."
                )
            )
            continue
        headers = [str(h or "").strip().lower() for h in (dataset.headers or [])]
        known = {c.name for c in SHEETS[name]}
        for header in headers:
            if header and header not in known:
                problems.append(
                    Problem(f"{name} row 1", header, header, "Unknown column (see the template).")
                )
        for column in SHEETS[name]:
            if column.required and column.name not in headers and dataset.height:
                problems.append(Problem(f"{name} row 1", column.name, None, "Missing column."))
        columns = {c.name: c for c in SHEETS[name]}
        rows[name] = [
            {h: _cell(columns.get(h), v) for h, v in zip(headers, row, strict=False) if h}
            for row in dataset
        ]
    return rows, problems


# --- cells to records ----------------------------------------------------------------------------


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


def parse_datetime(text: str, zone: ZoneInfo) -> datetime:
    """A collection time; without an offset it is the center's local time (a date alone: 00:00),
    a time the clocks skip or show twice refused (patients.days.at_local_time)."""
    try:
        moment = (
            datetime.combine(date.fromisoformat(text), time(0))
            if len(text) == 10
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise ValueError("write the time as YYYY-MM-DD HH:MM") from None
    try:
        return at_local_time(moment, zone)
    except LocalTimeError as error:
        raise ValueError(str(error).rstrip(".")) from None


def _parse(column: Column, text: str, zone: ZoneInfo):
    if text == "":
        return None
    if column.kind == "date":
        try:
            return (
                date.fromisoformat(text[:10]) if len(text) in (10, 19) else date.fromisoformat(text)
            )
        except ValueError:
            raise ValueError("write the date as YYYY-MM-DD") from None
    if column.kind == "datetime":
        return parse_datetime(text, zone)
    if column.kind == "decimal":
        return parse_decimal(text)
    if column.kind == "int":
        if not text.isdigit():
            raise ValueError("a whole number")
        return int(text)
    if column.kind == "bool":
        if text.lower() not in ("yes", "no", "true", "false", "1", "0"):
            raise ValueError("yes or no")
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
    targets = {
        "patients": (PatientRecord, batch.patients),
        "infusions": (InfusionRecord, batch.infusions),
        "responses": (ResponseRecord, batch.responses),
        "events": (EventRecord, batch.events),
        "therapies": (TherapyRecord, batch.therapies),
    }
    for sheet, sheet_rows in rows.items():
        for number, row in enumerate(sheet_rows, start=2):
            if all(v == "" for v in row.values()):
                continue  # an empty line (a number cell, even 0, is not empty)
            place = f"{sheet} row {number}"
            values, bad = {}, False
            zone = zones.get(row.get("study_id", ""), ZoneInfo(settings.TIME_ZONE))
            for column in SHEETS[sheet]:
                text = row.get(column.name, "")
                if column.required and not text:
                    problems.append(Problem(place, column.name, "", "Required."))
                    bad = True
                    continue
                try:
                    parsed = _parse(column, text, zone)
                except ValueError as error:
                    shown = text if isinstance(text, str) else _number_text(text)
                    problems.append(Problem(place, column.name, shown, f"Cannot read it: {error}."))
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
