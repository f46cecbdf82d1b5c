"""How values are written for people: one date format everywhere ("9 Nov 2026"; ISO only in
files and the API), and lab values in their analyte's canonical unit with the entered value kept
for the hover."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from patients import units


def human_date(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):  # an ISO date kept in an alert's JSON basis
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = _local(value).date()
    return f"{value.day} {value:%b %Y}"


def human_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    value = _local(value)
    return f"{human_date(value)} {value:%H:%M}"


def _local(value: datetime) -> datetime:
    # The active time zone: the center's zone where a view sets it, else the default.
    return timezone.localtime(value) if timezone.is_aware(value) else value


def plain_number(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def canonical_value(result) -> str:
    """A lab result in its analyte's canonical unit (a qualifier as words)."""
    if result.qualifier:
        return result.get_qualifier_display()
    value = result.canonical_value if result.canonical_value is not None else result.value
    return plain_number(Decimal(value))


def entered_value(result) -> str:
    """The value exactly as it was entered, with its unit."""
    if result.qualifier:
        return result.get_qualifier_display()
    return f"{plain_number(result.value)} {units.UNIT_LABELS.get(result.unit, result.unit)}"
