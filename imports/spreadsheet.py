"""Spreadsheets (XLSX with one sheet per record type, or one CSV per record type) as import
records, with every cell that cannot be read reported by sheet, row, column and value.

Reading is tablib's (openpyxl underneath for XLSX); this module only maps columns to fields and
parses the text of each cell. Row numbers are the spreadsheet's own (the header is row 1).
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import tablib
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel

from carttrack.csv_safety import CsvError, read_csv, sniff_delimiter, write_csv
from imports.problems import MESSAGES, Coded, CodedError, error_item
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
    help: str = ""  # shown in the template's guide, in the downloader's language


SHEETS: dict[str, tuple[Column, ...]] = {
    "patients": (
        Column("study_id", required=True, help=_("pseudonymous ID: letters, digits, - _ .")),
        Column("center", field="center_code", help=_("center code; empty: your own center")),
        Column("sex", help="F, M or U"),
        Column("date_of_birth", "date"),
        Column("mrn", help=_("restricted identifier")),
        Column("full_name", help=_("restricted identifier")),
        Column("diagnosis"),
        Column("ph_positive", "bool", help=_("yes / no / empty")),
    ),
    "infusions": (
        Column("study_id", required=True),
        Column("infusion_date", "date", required=True, help=_("day 0")),
        Column("product", required=True),
        Column("infusion_number", "int", help=_("empty: numbered by date")),
        Column("target_antigen", help=_("default CD19")),
        Column("dose_cells_per_kg", "decimal"),
        Column("lymphodepletion"),
    ),
    "labs": (
        Column("study_id", required=True),
        Column(
            "collected_at",
            "datetime",
            required=True,
            help=_("YYYY-MM-DD HH:MM in the center's time zone, or with an offset"),
        ),
        Column("analyte", required=True, help="pb_bcell_abs, pb_bcell_pct, alc, bm_mrd_flow, ..."),
        Column("value", "decimal", help=_("empty with a qualifier")),
        Column("unit", help="cells/uL, 10^9/L, 10^6/L, % lymphocytes, % cells, fraction, ..."),
        Column("qualifier", help=_("undetectable or below_lod instead of a value")),
        Column("method"),
        Column(
            "confirmed",
            "bool",
            help=_("yes: the value was checked and is correct though refused as unusual"),
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
# Added to the checks' "unusual value" message, in the uploader's language (the job runs in it).
CONFIRM_HINT = MESSAGES["confirm_hint"]
FIELD_COLUMNS = {c.field: c.name for cols in SHEETS.values() for c in cols if c.field}


def template(fmt: str, sheet: str = "labs") -> bytes:
    """An empty spreadsheet with the right headers (XLSX: every sheet and a column guide)."""
    if fmt == "csv":
        return write_csv([c.name for c in SHEETS[sheet]], []).encode()
    book = tablib.Databook(
        [
            tablib.Dataset(headers=[c.name for c in columns], title=name)
            for name, columns in SHEETS.items()
        ]
        + [
            tablib.Dataset(
                *[
                    (name, c.name, "yes" if c.required else "", c.kind, str(c.help))
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


def _cell(column: Column | None, value, epoch=None):
    """What the rows keep of a cell: its text, or, in a decimal column, a number cell's number
    (JSON keeps it a number), so it is never read by the rules for numbers typed as text: a
    number cell is one number ("1.234" typed may mean 1234, the number 1.234 cannot). A number
    cell in a date column is an Excel serial number (days since the workbook's epoch)."""
    if column is not None and column.kind == "decimal" and _is_number_cell(value):
        return _cell_number(value)
    if column is not None and column.kind in ("date", "datetime") and _is_number_cell(value):
        if 0 < value < 2_958_466:  # up to 9999-12-31
            moment = from_excel(float(value), epoch or CALENDAR_WINDOWS_1900)
            if column.kind == "date" or moment.time() == time(0):
                return moment.date().isoformat()
            return moment.isoformat(sep=" ", timespec="minutes")
    return _cell_text(value)


@dataclass(frozen=True)
class Limits:
    """What a spreadsheet may hold, checked before its cells are read (issue 21: a 175 KB XLSX
    of 200,000 rows stalled a web worker; a 53 KB one unzipped to 50 MB of rows)."""

    unzipped_bytes: int
    rows: int
    cells: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            settings.SPREADSHEET_MAX_UNZIPPED_BYTES,
            settings.SPREADSHEET_MAX_ROWS,
            settings.SPREADSHEET_MAX_CELLS,
        )


class TooLarge(Exception):
    """The file is over a limit; nothing of it was read. `message` keeps its code (`what`: a
    coded reason, e.g. Coded("too_large_lines", lines=n))."""

    def __init__(self, what: Coded, limits: Limits):
        self.message = Coded(
            "too_large",
            what=what.item,
            rows=limits.rows,
            cells=limits.cells,
            megabytes=round(limits.unzipped_bytes / 1_000_000),
        )
        super().__init__(str(self.message))


CSV_DELIMITERS = ";,\t|"
HEADER_SEARCH_ROWS = 30  # a header row is looked for this far down, under title rows


def read_rows(
    file_name: str, data: bytes, csv_sheet: str = "", *, limits: Limits | None = None
) -> tuple[dict, list[Problem], list[str]]:
    """{sheet: [{"_row": n, column: cell}, ...]}, problems with the file's shape (refusing), and
    notices (title rows skipped, columns ignored) that do not. A cell is its text, or in a
    decimal column a number cell's number; a date in a number cell (an Excel serial number)
    is its ISO date. Raises TooLarge, before reading the cells, when the file is over `limits`.
    """
    limits = limits or Limits.from_settings()
    lower = file_name.lower()
    if lower.endswith(".xlsx"):
        sheets, problems, epoch = _xlsx_sheets(file_name, data, limits)
    elif lower.endswith(".csv"):
        if csv_sheet not in SHEETS:
            return {}, [Problem(file_name, "", None, Coded("csv_sheet_missing"))], []
        sheets, problems, epoch = _csv_sheets(file_name, data, csv_sheet, limits)
    else:
        return {}, [Problem(file_name, "", None, Coded("file_type"))], []
    rows: dict[str, list[dict]] = {}
    notices: list[dict] = []
    for name, raw in sheets:
        if name == "guide" or (name not in SHEETS and not any(_filled(r) for r in raw)):
            continue
        if name not in SHEETS:
            problems.append(
                Problem(name, "", None, Coded("unknown_sheet", sheets=", ".join(SHEETS)))
            )
            continue
        rows[name] = _sheet_rows(name, raw, epoch, problems, notices)
    return rows, problems, notices


def _filled(row) -> bool:
    return any(v is not None and str(v).strip() != "" for v in row)


def _xlsx_sheets(file_name: str, data: bytes, limits: Limits):
    unreadable = [Problem(file_name, "", None, Coded("xlsx_unreadable"))]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return [], unreadable, None
    # The sizes the archive declares: zipfile never inflates a member beyond its declared size
    # (it fails the CRC instead), so this bounds what openpyxl can unpack.
    unzipped = sum(m.file_size for m in members)
    if unzipped > limits.unzipped_bytes:
        raise TooLarge(
            Coded("too_large_unzipped", megabytes=round(unzipped / 1_000_000, 1)), limits
        )
    try:
        _xlsx_count_rows(archive, limits)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return [], unreadable, None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        return [], unreadable, None
    sheets = []
    total_rows = total_cells = 0
    try:
        for sheet in book.worksheets:
            declared_rows, declared_cols = _declared_size(sheet)
            if declared_rows > limits.rows or declared_rows * declared_cols > limits.cells:
                raise TooLarge(
                    Coded(
                        "too_large_sheet",
                        sheet=repr(str(sheet.title)),
                        rows=declared_rows,
                        columns=declared_cols,
                    ),
                    limits,
                )
            raw = []
            for row in sheet.iter_rows(values_only=True):
                total_rows += 1
                total_cells += len(row)
                if total_rows > limits.rows or total_cells > limits.cells:
                    raise TooLarge(
                        Coded("too_large_rows", rows=limits.rows, cells=limits.cells), limits
                    )
                raw.append(row)
            sheets.append((str(sheet.title).strip().lower(), raw))
    except TooLarge:
        raise
    except Exception:
        return [], unreadable, None
    finally:
        book.close()
    return sheets, [], book.epoch


def _xlsx_count_rows(archive: zipfile.ZipFile, limits: Limits) -> None:
    """Count the rows and cells of every worksheet by their tags, streaming the XML (no parse),
    so a sheet without a <dimension> is refused before openpyxl reads it."""
    rows = cells = 0
    for member in archive.infolist():
        if not (member.filename.startswith("xl/worksheets/") and member.filename.endswith(".xml")):
            continue
        tail = b""
        with archive.open(member) as stream:
            while chunk := stream.read(1 << 20):
                text = tail + chunk
                rows += text.count(b"<row>") + text.count(b"<row ")
                cells += text.count(b"<c>") + text.count(b"<c ")
                tail = text[-4:]
                # a tag cut by the chunk's end is counted in the next chunk: drop it here
                rows -= tail.count(b"<row>") + tail.count(b"<row ")
                cells -= tail.count(b"<c>") + tail.count(b"<c ")
                if rows > limits.rows or cells > limits.cells:
                    raise TooLarge(
                        Coded("too_large_rows", rows=limits.rows, cells=limits.cells), limits
                    )


def _declared_size(sheet) -> tuple[int, int]:
    """The rows and columns the sheet's <dimension> says it uses (0 when it says nothing)."""
    try:
        return int(sheet.max_row or 0), int(sheet.max_column or 0)
    except (TypeError, ValueError):
        return 0, 0


def _csv_text(file_name: str, data: bytes) -> tuple[str | None, list[Problem]]:
    """The CSV's text: UTF-8 (Excel's "CSV UTF-8", with its BOM), else Windows-1252 (Excel's
    plain "CSV" in Western Europe). UTF-16 ("Unicode text") and NUL bytes are refused."""
    again = [Problem(file_name, "", None, Coded("csv_encoding"))]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, again
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return None, [Problem(file_name, "", None, Coded("csv_nul", line=line))]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), []
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...)
        return None, again


def _csv_sheets(file_name: str, data: bytes, sheet: str, limits: Limits):
    text, problems = _csv_text(file_name, data)
    if text is None:
        return [], problems, None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if lines > limits.rows:
        raise TooLarge(Coded("too_large_lines", lines=lines), limits)
    delimiter = sniff_delimiter(text, CSV_DELIMITERS)
    if text.count(delimiter) + lines > limits.cells:
        raise TooLarge(Coded("too_large_cells", cells=limits.cells), limits)
    try:
        raw = [tuple(r) for r in read_csv(text, delimiter=delimiter)]
    except CsvError as error:
        return [], [Problem(file_name, "", None, Coded("csv_unreadable", error=str(error)))], None
    return [(sheet, raw)], [], None


def _header_index(name: str, raw: list) -> int:
    """The row (0-based) holding the most of the sheet's column names, within the first rows:
    title rows above the header (a report's name, a date) are not the header."""
    known = {c.name for c in SHEETS[name]}
    best, best_score = 0, 0
    for i, row in enumerate(raw[:HEADER_SEARCH_ROWS]):
        score = sum(1 for v in row if str(v or "").strip().lower() in known)
        if score > best_score:
            best, best_score = i, score
    return best


def _sheet_rows(name: str, raw: list, epoch, problems: list, notices: list) -> list[dict]:
    if not raw:
        return []
    start = _header_index(name, raw)
    headers = [str(h or "").strip().lower() for h in raw[start]]
    if start and any(_filled(r) for r in raw[:start]):
        notices.append(Coded("title_rows", sheet=name, count=start, header_row=start + 1).item)
    columns = {c.name: c for c in SHEETS[name]}
    for column in SHEETS[name]:
        if column.required and column.name not in headers:
            problems.append(
                Problem(f"{name} row {start + 1}", column.name, None, Coded("missing_column"))
            )
    body = raw[start + 1 :]
    width = max((len(r) for r in body), default=0)
    ignored = []
    for i in range(max(width, len(headers))):
        header = headers[i] if i < len(headers) else ""
        if header in columns:
            continue
        if header or any(i < len(r) and _filled([r[i]]) for r in body):
            ignored.append({"column": get_column_letter(i + 1), "header": header})
    if ignored:
        notices.append(
            Coded(
                "ignored_columns", sheet=name, count=len(ignored), columns={"ignored": ignored}
            ).item
        )
    rows = []
    for number, row in enumerate(body, start=start + 2):
        cells = {"_row": number}
        for header, value in zip(headers, row, strict=False):
            if header in columns:
                cells[header] = _cell(columns[header], value, epoch)
        rows.append(cells)
    while rows and all(v == "" for k, v in rows[-1].items() if k != "_row"):
        rows.pop()  # trailing empty lines
    return rows


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
                    shown = text if isinstance(text, str) else _number_text(text)
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
