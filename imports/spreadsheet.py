"""Spreadsheets (XLSX with one sheet per record type, or one CSV per record type) read into rows
of cells, with the file's shape checked (its size before its cells, the sheets, a header row
under title rows, the required columns) and every problem reported by sheet and row.

XLSX is read with openpyxl, CSV with ``carttrack.csv_safety`` (the delimiter sniffed). A cell is
kept as its text, or a number cell's number in a decimal column; reading that text into values
and the rows into import records is ``imports.sheet_records``. Row numbers are the
spreadsheet's own (the header is row 1).
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

import openpyxl
from django.conf import settings
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel

from carttrack.csv_safety import CsvError, read_csv, sniff_delimiter
from imports.problems import Coded
from imports.sheets import SHEETS, Column
from patients.ingest.records import Problem


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


def number_text(value: int | float | Decimal) -> str:
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
        return number_text(value)
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
