"""The analysis dataset: one row per infused patient, the contract between the exporter and
the statistics.

Every column is declared once in ``COLUMNS``; ``DATA_DICTIONARY`` is generated from it, so the
documentation a statistician reads and the validation the code runs cannot drift apart.
``read_analysis_csv`` (a CSV file) and ``validate_analysis_frame`` (a DataFrame built in memory)
both return the same typed table or raise a ``ValueError`` that names the line, the study ID and
the column of every problem found (up to ``MAX_REPORTED_PROBLEMS``).

Blank cells (and ``NA``, which R's ``write.csv`` writes) mean "not applicable / not known".
Exported text cells are protected against spreadsheet formula injection
(``carttrack.csv_safety``); the reader removes the protecting quote.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from os import PathLike
from typing import IO, Any

import pandas as pd
from django.utils.translation import gettext, gettext_noop, pgettext_lazy

from carttrack.csv_safety import FORMULA_NOTE, restore_cell
from patients.vocabulary import CR, CRI, RESPONSES, TherapyCategory

#: The window that defines early regeneration (CLINICAL.md section 4); ``early_regen`` in the
#: dataset must agree with ``regen_day`` under this window.
EARLY_REGENERATION_WINDOW_DAYS = 45

CR_RESPONSES = (CR, CRI)
PREEMPTIVE_CATEGORIES = (*(c.value for c in TherapyCategory), "none")
BLANK_MARKERS = frozenset({"", "NA"})
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Column:
    """One column of the analysis dataset."""

    name: str
    kind: str  # "text", "date", "number", "day", "flag", "code", "choice"
    meaning: str  # a message (gettext_noop): English in the files, translated on the page
    required: bool = False  # blank not allowed
    choices: tuple[str, ...] = ()  # for "choice" and "code" (codes are integers as strings)

    @property
    def allowed_values(self) -> str:
        return self.allowed_values_text(translate=False)

    def meaning_text(self, *, translate: bool) -> str:
        """The meaning in English (files) or in the active language (the page)."""
        text = gettext(self.meaning) if translate else self.meaning
        return text.replace("{window}", str(EARLY_REGENERATION_WINDOW_DAYS))

    def allowed_values_text(self, *, translate: bool) -> str:
        if self.kind in ("choice", "code", "flag"):
            values = self.choices or ("0", "1")
            text = ", ".join(values)
        elif self.kind == "day":
            text = gettext_noop("number >= 0 (days since the first infusion)")
        elif self.kind == "number":
            text = gettext_noop("number >= 0")
        elif self.kind == "date":
            text = gettext_noop("ISO date YYYY-MM-DD")
        else:
            text = gettext_noop("text (a leading = + - @ tab or CR is written after a ')")
        if translate and self.kind not in ("choice", "code", "flag"):
            text = gettext(text)
        if self.required:
            return text
        return (
            gettext("{values}; blank allowed") if translate else "{values}; blank allowed"
        ).replace("{values}", text)

    @property
    def pandas_dtype(self) -> str:
        return {
            "text": "object",
            "choice": "object",
            "date": "datetime64[ns]",
            "number": "float64",
            "day": "float64",
            "flag": "Int64",
            "code": "Int64",
        }[self.kind]


COLUMNS: tuple[Column, ...] = (
    Column("study_id", "text", gettext_noop("Pseudonymous study ID (unique)."), required=True),
    Column("center", "text", gettext_noop("Center code."), required=True),
    Column("product", "text", gettext_noop("CAR-T product of the first infusion."), required=True),
    Column(
        "synthetic",
        "flag",
        gettext_noop("1 if the patient is synthetic (demo data)."),
        required=True,
    ),
    Column(
        "first_infusion_date",
        "date",
        gettext_noop("Date of the first CAR-T infusion (day 0)."),
        True,
    ),
    Column("age_at_infusion", "number", gettext_noop("Age in years at the first infusion.")),
    Column("sex", "choice", gettext_noop("Sex."), choices=("M", "F")),
    Column(
        "best_response",
        "choice",
        gettext_noop("Best response after the first infusion; NE = not evaluable / not assessed."),
        required=True,
        choices=RESPONSES,
    ),
    Column(
        "cr", "flag", gettext_noop("1 if the best response is CR or CRi, else 0."), required=True
    ),
    Column("cr_day", "day", gettext_noop("Day of the first CR/CRi assessment; blank if none.")),
    Column("rfs_days", "day", gettext_noop("RFS time from the first infusion; blank if not CR.")),
    Column("rfs_event", "flag", gettext_noop("1 relapse or death, 0 censored; blank if not CR.")),
    Column(
        "rfs_from_cr_days", "day", gettext_noop("RFS time measured from cr_day; blank if not CR.")
    ),
    Column("os_days", "day", gettext_noop("OS time from the first infusion."), required=True),
    Column("os_event", "flag", gettext_noop("1 death, 0 censored."), required=True),
    Column("relapse_day", "day", gettext_noop("Day of relapse; blank if none.")),
    Column("death_day", "day", gettext_noop("Day of death; blank if none.")),
    Column("hsct_day", "day", gettext_noop("Day of allogeneic HSCT; blank if none.")),
    Column(
        "last_followup_day",
        "day",
        gettext_noop("Day of the last follow-up contact."),
        required=True,
    ),
    Column(
        "cir_event",
        "code",
        gettext_noop(
            "CR patients: 1 relapse, 2 death without relapse, 0 censored (time = rfs_days); "
            "blank if not CR."
        ),
        choices=("0", "1", "2"),
    ),
    Column(
        "regen_day",
        "day",
        gettext_noop("Day of the first detectable PB B-cell count after aplasia."),
    ),
    Column(
        "early_regen",
        "flag",
        gettext_noop(
            "1 if regen_day <= {window} else 0; blank if B-cell aplasia was never documented."
        ),
    ),
    Column(
        "late_regen",
        "flag",
        gettext_noop("1 if regen_day > {window} else 0; blank if aplasia was never documented."),
    ),
    Column(
        "mrd_positive",
        "flag",
        gettext_noop("1 if any post-infusion BM MRD >= threshold; blank if none."),
    ),
    Column(
        "car_loss",
        "flag",
        gettext_noop("1 if BM CAR copies became undetectable after being detectable."),
    ),
    Column(
        "preemptive_category",
        "choice",
        gettext_noop("Category of the first pre-emptive therapy."),
        required=True,
        choices=PREEMPTIVE_CATEGORIES,
    ),
    Column(
        "preemptive_day", "day", gettext_noop("Day the pre-emptive therapy started; blank if none.")
    ),
    # The center's alert definition, beside the study's (regen_day, early_regen, late_regen keep
    # the study's 45 days and > 0 cells/µL whatever the center's parameters are).
    Column(
        "center_regen_day",
        "day",
        gettext_noop(
            "Day of regeneration by the definition the patient's center's alerts use (its "
            "window, threshold, % x ALC and confirmation in force), unlike regen_day (the "
            "study's); blank if none."
        ),
    ),
    Column(
        "center_early_regen",
        "flag",
        gettext_noop(
            "1 if the center's alert for center_regen_day is early regeneration (inside the "
            "center's window), 0 if late recovery; blank if center_regen_day is blank. Unlike "
            "early_regen, not the study's 45-day window."
        ),
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_NAME = {c.name: c for c in COLUMNS}

#: The data dictionary as plain rows (name, type, meaning, allowed values), in English: the
#: CSV and Markdown files are the same for every reader, like the column names they describe.
DATA_DICTIONARY: list[dict[str, str]] = [
    {
        "name": c.name,
        "type": c.kind,
        "meaning": c.meaning_text(translate=False),
        "allowed_values": c.allowed_values,
    }
    for c in COLUMNS
]

_KIND_SHOWN = {
    "text": pgettext_lazy("column type", "text"),
    "date": pgettext_lazy("column type", "date"),
    "number": pgettext_lazy("column type", "number"),
    "day": pgettext_lazy("column type", "day"),
    "flag": pgettext_lazy("column type", "flag"),
    "code": pgettext_lazy("column type", "code"),
    "choice": pgettext_lazy("column type", "choice"),
}


def data_dictionary_shown() -> list[dict[str, str]]:
    """The data dictionary as the page shows it: column names and values as they are in the
    file, type, meaning and allowed values in the active language."""
    return [
        {
            "name": c.name,
            "type": str(_KIND_SHOWN[c.kind]),
            "meaning": c.meaning_text(translate=True),
            "allowed_values": c.allowed_values_text(translate=True),
        }
        for c in COLUMNS
    ]


def data_dictionary_table() -> tuple[list[str], list[list[str]]]:
    """The data dictionary as header and rows (its CSV download: ``csv_response``)."""
    header = list(DATA_DICTIONARY[0])
    return header, [[row[key] for key in header] for row in DATA_DICTIONARY]


def data_dictionary_markdown() -> str:
    """The data dictionary as a Markdown table."""
    lines = ["| column | type | meaning | allowed values |", "|---|---|---|---|"]
    for row in DATA_DICTIONARY:
        cells = [row["name"], row["type"], row["meaning"], row["allowed_values"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    from analytics.disclosure import DISCLOSURE_NOTE

    return (
        "\n".join(lines)
        + "\n\n**Spreadsheet safety.** "
        + FORMULA_NOTE
        + "\n\n**Small cells and differencing.** "
        + DISCLOSURE_NOTE
        + "\n"
    )


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
            sid = "" if _is_blank(study_id) else str(study_id).strip()
            self.by_row.setdefault(row, []).append((sid, column, message))
        if len(self.items) >= MAX_REPORTED_PROBLEMS:
            self.truncated = True
            return
        self.items.append(f"{where}, column '{column}': {message}")

    def raise_if_any(self) -> None:
        if self.items:
            more = " (further problems not shown)" if self.truncated else ""
            raise ValueError("Invalid analysis dataset:\n  " + "\n  ".join(self.items) + more)


def _is_blank(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in BLANK_MARKERS


def _parse_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value.strip() if isinstance(value, str) else value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _parse_cell(column: Column, value: Any) -> Any:
    """Parse one non-blank cell; raise ValueError with a human message."""
    if column.kind == "text":
        return str(value).strip()
    if column.kind == "choice":
        text = str(value).strip()
        if text not in column.choices:
            raise ValueError(f"{text!r} is not one of {', '.join(column.choices)}")
        return text
    if column.kind == "date":
        if isinstance(value, date):
            return pd.Timestamp(value)
        try:
            return pd.Timestamp(date.fromisoformat(str(value).strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    try:
        number = _parse_number(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if column.kind in ("number", "day"):
        if number < 0:
            raise ValueError(f"{value!r} is negative")
        return number
    allowed = column.choices or ("0", "1")
    if not number.is_integer() or str(int(number)) not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return int(number)


def _where(line: int, study_id: Any) -> str:
    sid = "" if _is_blank(study_id) else f" (study_id {str(study_id).strip()})"
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
            if _is_blank(value):
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
                parsed[column.name].append(_parse_cell(column, value))
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


Check = Callable[[dict[str, Any]], tuple[str, str] | None]


def _row_checks() -> Iterable[Check]:
    """Cross-field rules whose violation would silently change a result."""

    def cr_matches_response(r: dict[str, Any]) -> tuple[str, str] | None:
        expected = 1 if r["best_response"] in CR_RESPONSES else 0
        if r["cr"] != expected:
            return "cr", f"is {r['cr']} but best_response is {r['best_response']}"
        return None

    def cr_fields(r: dict[str, Any]) -> tuple[str, str] | None:
        for name in ("rfs_days", "rfs_event", "cir_event"):
            if r["cr"] == 1 and _is_blank(r[name]):
                return name, "is blank but the patient is in CR (cr = 1)"
        for name in ("rfs_days", "rfs_event", "rfs_from_cr_days", "cir_event", "cr_day"):
            if r["cr"] == 0 and not _is_blank(r[name]):
                return name, "must be blank when cr = 0 (RFS is defined for CR patients only)"
        return None

    def rfs_within_os(r: dict[str, Any]) -> tuple[str, str] | None:
        if r["rfs_days"] is not None and r["rfs_days"] > r["os_days"]:
            return "rfs_days", f"({r['rfs_days']:g}) is longer than os_days ({r['os_days']:g})"
        return None

    def cir_matches_rfs(r: dict[str, Any]) -> tuple[str, str] | None:
        if r["cr"] != 1 or r["cir_event"] is None or r["rfs_event"] is None:
            return None
        if (r["cir_event"] != 0) != (r["rfs_event"] == 1):
            return "cir_event", f"is {r['cir_event']} but rfs_event is {r['rfs_event']}"
        return None

    def regeneration(r: dict[str, Any]) -> tuple[str, str] | None:
        window = EARLY_REGENERATION_WINDOW_DAYS
        day = r["regen_day"]
        if _is_blank(day):
            if r["early_regen"] == 1 or r["late_regen"] == 1:
                return "regen_day", "is blank but early_regen or late_regen is 1"
            return None
        if _is_blank(r["early_regen"]):
            return "early_regen", "is blank but regen_day is given"
        if r["early_regen"] != int(day <= window):
            return "early_regen", f"is {r['early_regen']} but regen_day is {day:g}"
        if not _is_blank(r["late_regen"]) and r["late_regen"] != int(day > window):
            return "late_regen", f"is {r['late_regen']} but regen_day is {day:g}"
        return None

    def center_regeneration(r: dict[str, Any]) -> tuple[str, str] | None:
        # The center's window differs between centers: only "a flag exactly when a day".
        if _is_blank(r["center_regen_day"]) != _is_blank(r["center_early_regen"]):
            if _is_blank(r["center_regen_day"]):
                return "center_early_regen", "is given but center_regen_day is blank"
            return "center_early_regen", "is blank but center_regen_day is given"
        return None

    return (
        cr_matches_response,
        cr_fields,
        rfs_within_os,
        cir_matches_rfs,
        regeneration,
        center_regeneration,
    )


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
    checks = tuple(_row_checks())
    for index, typed in enumerate(frame.to_dict("records")):
        # pd.NA refuses boolean tests; None compares unequal to every code, which is what we mean
        record = {name: None if _is_blank(value) else value for name, value in typed.items()}
        for check in checks:
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
