"""CSV that a spreadsheet cannot execute: every CSV this application writes goes through here.

Excel, LibreOffice and Google Sheets read a cell that begins with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula (CSV or "formula" injection: ``=HYPERLINK(...)``,
``-cmd|' /C calc'!A0``). Such a cell is written with a single quote in front, which every
spreadsheet shows as text and never evaluates. Plain numbers (``-3``, ``+1.5``, ``-2e3``) are
left alone: a spreadsheet reads them as numbers, not formulas, and R and pandas still parse them.

The quote is reversible: ``restore_cell`` removes exactly one, so reading an exported file gives
back the stored values (a value that itself began with quotes before a formula character gets
one more quote on the way out, so nothing is lost).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from django.http import HttpResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTE = re.compile(r"^'*[=+\-@\t\r]")
_QUOTED = re.compile(r"^'+[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

#: How the data dictionary explains it.
FORMULA_NOTE = (
    "A text cell that would begin with =, +, -, @, a tab or a carriage return is written with a "
    "single quote (') in front, so that spreadsheets show it as text instead of running it as a "
    "formula; plain numbers are written as they are. Remove that one quote when reading the file "
    "with other software (CARTtrack's own reader does)."
)


def neutralise_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if _NEEDS_QUOTE.match(text) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def restore_cell(text: str) -> str:
    return text[1:] if _QUOTED.match(text) else text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV text (RFC 4180: comma-separated, CRLF line ends, a field holding a line break
    quoted) with every cell neutralised."""
    out = io.StringIO()
    # CRLF line ends: the writer then also quotes a field holding a bare CR.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise_cell(cell) for cell in header])
    writer.writerows([neutralise_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def neutralise_csv_text(text: str) -> str:
    """Re-write CSV text (for instance a stored table) with every cell neutralised."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        return ""
    return write_csv(header, rows)


def csv_response(text: str, *, filename: str) -> HttpResponse:
    """A CSV download: neutralised, and never kept in a browser's or proxy's cache."""
    response = HttpResponse(neutralise_csv_text(text), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
