"""An analysis table checked and typed against its columns: from a CSV file
(``read_analysis_csv``) or a DataFrame built in memory (``validate_analysis_frame``).

Both return the same typed table or raise a ``ValueError`` that names the line, the study ID and
the column of every problem found (up to ``MAX_REPORTED_PROBLEMS``); the lenient readers
(``split_analysis_frame``, ``read_analysis_csv_lenient``) leave the refused rows out and name
them instead. Exported text cells are protected against spreadsheet formula injection
(``carttrack.csv_safety``); the reader removes the protecting quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import IO, Any

import pandas as pd

from analytics.dataset_schema.cells import is_blank, parse_cell
from analytics.dataset_schema.checks import ROW_CHECKS
from analytics.dataset_schema.columns import COLUMN_NAMES, COLUMNS
from carttrack.csv_safety import restore_cell

MAX_REPORTED_PROBLEMS = 20


class _Problems:
    """Collects field-level problems so one run reports all of them, not just the first.

    Each problem also remembers its row (the offset of the data row) and study ID, so a lenient
    reader can leave exactly the refused rows out and name them."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.truncated = False
        self.by_row: dict[int, list[tuple[str, str, str]]] = {}

    def add(
        self, where: str, column: str, message: str, *, row: int | None = None, study_id: Any = ""
    ) -> None:
        if row is not None:
            sid = "" if is_blank(study_id) else str(study_id).strip()
            self.by_row.setdefault(row, []).append((sid, column, message))
        if len(self.items) >= MAX_REPORTED_PROBLEMS:
            self.truncated = True
            return
        self.items.append(f"{where}, column '{column}': {message}")

    def raise_if_any(self) -> None:
        if self.items:
            more = " (further problems not shown)" if self.truncated else ""
            raise ValueError("Invalid analysis dataset:\n  " + "\n  ".join(self.items) + more)


def _where(line: int, study_id: Any) -> str:
    sid = "" if is_blank(study_id) else f" (study_id {str(study_id).strip()})"
    return f"line {line}{sid}"


def validate_analysis_frame(raw: pd.DataFrame, *, first_line: int = 2) -> pd.DataFrame:
    """Check and type a DataFrame holding the analysis columns (strings or typed values).

    ``first_line`` is the line number of the first data row in the source file (2 for a CSV
    with one header line) and only affects the error messages. Extra columns are ignored and
    dropped; missing columns, unparseable cells and inconsistent rows raise ``ValueError``.
    """
    frame, problems = _typed_frame(raw, first_line=first_line, lenient=False)
    problems.raise_if_any()
    return frame


@dataclass(frozen=True)
class ExcludedRow:
    """A patient's row that the schema refused, left out of a lenient read."""

    study_id: str
    column: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"study_id": self.study_id, "column": self.column, "problem": self.problem}


def split_analysis_frame(
    raw: pd.DataFrame, *, first_line: int = 2
) -> tuple[pd.DataFrame, list[ExcludedRow]]:
    """Like ``validate_analysis_frame``, but a row the schema refuses is left out instead of
    refusing the table: returns the typed table of the accepted rows and one ``ExcludedRow``
    per problem of the refused ones (a patient with two problems is named twice). A table-wide
    problem (a missing column) still raises ``ValueError``.

    This is what the dashboards use, so that one bad row (legacy data, a hand correction) never
    takes every center's dashboard down; the refused rows are named where they can be fixed."""
    frame, problems = _typed_frame(raw, first_line=first_line, lenient=True)
    if not problems.by_row:
        return frame, []
    bad = sorted(problems.by_row)
    excluded = [ExcludedRow(*problem) for row in bad for problem in problems.by_row[row]]
    kept = raw.drop(index=raw.index[bad])
    frame, again = _typed_frame(kept, first_line=first_line, lenient=True)
    if again.by_row:  # e.g. a duplicate study ID whose first row was the refused one
        excluded += [ExcludedRow(*p) for row in sorted(again.by_row) for p in again.by_row[row]]
        kept = kept.drop(index=kept.index[sorted(again.by_row)])
        frame = validate_analysis_frame(kept, first_line=first_line)
    return frame, excluded


def _typed_frame(
    raw: pd.DataFrame, *, first_line: int, lenient: bool
) -> tuple[pd.DataFrame, _Problems]:
    missing = [name for name in COLUMN_NAMES if name not in raw.columns]
    if missing:
        raise ValueError(
            "Invalid analysis dataset: missing column(s) " + ", ".join(repr(m) for m in missing)
        )
    problems = _Problems()
    parsed: dict[str, list[Any]] = {name: [] for name in COLUMN_NAMES}
    records = raw[list(COLUMN_NAMES)].to_dict("records")
    for offset, record in enumerate(records):
        where = _where(first_line + offset, record["study_id"])
        for column in COLUMNS:
            value = record[column.name]
            if is_blank(value):
                if column.required:
                    problems.add(
                        where,
                        column.name,
                        "is blank but required",
                        row=offset,
                        study_id=record["study_id"],
                    )
                parsed[column.name].append(None)
                continue
            try:
                parsed[column.name].append(parse_cell(column, value))
            except ValueError as error:
                problems.add(
                    where, column.name, str(error), row=offset, study_id=record["study_id"]
                )
                parsed[column.name].append(None)
    if problems.items and not lenient:
        return pd.DataFrame(), problems

    frame = pd.DataFrame(
        {
            c.name: pd.Series(parsed[c.name], dtype=c.pandas_dtype, index=raw.index)
            if c.kind != "date"
            else pd.to_datetime(pd.Series(parsed[c.name], index=raw.index, dtype="object"))
            for c in COLUMNS
        }
    ).reset_index(drop=True)
    _check_consistency(frame, first_line, problems)
    return frame, problems


def _check_consistency(frame: pd.DataFrame, first_line: int, problems: _Problems) -> None:
    duplicated = frame["study_id"].duplicated(keep="first")
    for index in frame.index[duplicated]:
        where = _where(first_line + index, frame.at[index, "study_id"])
        problems.add(
            where,
            "study_id",
            "is a duplicate: one row per infused patient",
            row=int(index),
            study_id=frame.at[index, "study_id"],
        )
    for index, typed in enumerate(frame.to_dict("records")):
        # pd.NA refuses boolean tests; None compares unequal to every code, which is what we mean
        record = {name: None if is_blank(value) else value for name, value in typed.items()}
        for check in ROW_CHECKS:
            found = check(record)
            if found:
                problems.add(
                    _where(first_line + index, record["study_id"]),
                    *found,
                    row=index,
                    study_id=record["study_id"],
                )


def read_analysis_csv(path_or_buffer: str | PathLike[str] | IO[str]) -> pd.DataFrame:
    """Read and validate an analysis-dataset CSV (UTF-8, comma-separated, one header line)."""
    return validate_analysis_frame(_read_raw_csv(path_or_buffer))


def _read_raw_csv(path_or_buffer: str | PathLike[str] | IO[str]) -> pd.DataFrame:
    try:
        raw = pd.read_csv(
            path_or_buffer, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8"
        )
    except FileNotFoundError:
        raise ValueError(f"Analysis dataset not found: {path_or_buffer}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"Analysis dataset is not a readable CSV file: {error}") from None
    return raw.map(restore_cell)


def read_analysis_csv_lenient(
    path_or_buffer: str | PathLike[str] | IO[str],
) -> tuple[pd.DataFrame, list[ExcludedRow]]:
    """``read_analysis_csv`` that leaves refused rows out and names them (see
    ``split_analysis_frame``)."""
    return split_analysis_frame(_read_raw_csv(path_or_buffer))
