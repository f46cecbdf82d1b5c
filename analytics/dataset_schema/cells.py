"""One cell of the analysis dataset: blank or not, and parsed by its column's type."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd

from analytics.dataset_schema.columns import Column

# Blank cells (and ``NA``, which R's ``write.csv`` writes) mean "not applicable / not known".
BLANK_MARKERS = frozenset({"", "NA"})


def is_blank(value: Any) -> bool:
    """None, pandas' missing values, NaN, an empty cell or ``NA``."""
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


def parse_cell(column: Column, value: Any) -> Any:
    """Parse one non-blank cell; raise ValueError with a human message."""
    if column.kind == "text":
        return str(value).strip()
    if column.kind == "choice":
        return _parse_choice(column, value)
    if column.kind == "date":
        return _parse_date(value)
    return _parse_numeric(column, value)


def _parse_choice(column: Column, value: Any) -> str:
    text = str(value).strip()
    if text not in column.choices:
        raise ValueError(f"{text!r} is not one of {', '.join(column.choices)}")
    return text


def _parse_date(value: Any) -> pd.Timestamp:
    if isinstance(value, date):
        return pd.Timestamp(value)
    try:
        return pd.Timestamp(date.fromisoformat(str(value).strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


def _parse_numeric(column: Column, value: Any) -> float | int:
    """A number or a day (>= 0), or a flag or a code (one of its allowed integers)."""
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
