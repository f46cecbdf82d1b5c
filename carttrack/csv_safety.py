"""CSV that a spreadsheet cannot execute: every CSV this application writes or reads goes through
here (``write_csv``, ``read_csv``; ``csv_response`` for a download).

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
from typing import TYPE_CHECKING

from django.http import HttpResponse

if TYPE_CHECKING:  # pandas is loaded by the analytics that write frames, not by every CSV
    import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTE = re.compile(r"^'*[=+\-@\t\r]")
_QUOTED = re.compile(r"^'+[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

#: What ``read_csv`` raises for text it cannot split into rows.
CsvError = csv.Error

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


def write_csv(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """CSV text (RFC 4180: comma-separated, CRLF line ends, a field holding a line break
    quoted) with every cell neutralised. The one CSV writer of the application: downloads,
    stored analysis tables and import templates all come from here."""
    out = io.StringIO()
    # CRLF line ends: the writer then also quotes a field holding a bare CR.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise_cell(cell) for cell in header])
    writer.writerows([neutralise_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def read_csv(text: str, *, delimiter: str = ",", restore: bool = False) -> list[list[str]]:
    """The rows of CSV text (the header is the first), every cell a string. The one CSV
    reader of the application. ``restore=True`` undoes ``write_csv``'s protecting quote
    (a file this application wrote); an upload from a spreadsheet is read as it is.
    Raises ``CsvError`` for text the reader cannot split (a stray quote at the end, a NUL)."""
    rows = [list(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter)]
    if restore:
        rows = [[restore_cell(cell) for cell in row] for row in rows]
    return rows


def sniff_delimiter(text: str, delimiters: str) -> str:
    """The delimiter among ``delimiters`` that the text's first 50 lines are split by
    (csv.Sniffer; when it cannot tell, the most frequent of them, else a comma)."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=delimiters).delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in delimiters}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def frame_table(
    frame: pd.DataFrame, *, float_format: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """A DataFrame as header and rows of text for ``write_csv``, each cell as pandas'
    ``to_csv`` writes it (a blank for a missing value; floats by ``float_format`` if given,
    else in their shortest exact form; True/False)."""
    from pandas.api.types import is_float_dtype

    columns = []
    for name in frame.columns:
        values = frame[name]
        if float_format is not None and is_float_dtype(values):
            text = values.map(lambda v, f=float_format: f % v)
        else:
            text = values.astype(str)
        columns.append(text.where(values.notna(), "").tolist())
    return [str(name) for name in frame.columns], [list(row) for row in zip(*columns, strict=True)]


def csv_response(
    header: Sequence[object], rows: Iterable[Sequence[object]], *, filename: str
) -> HttpResponse:
    """A CSV download written by ``write_csv`` (so neutralised), and never kept in a
    browser's or proxy's cache."""
    response = HttpResponse(write_csv(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
