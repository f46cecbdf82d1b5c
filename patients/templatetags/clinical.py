"""Template filters that write dates and values the same way on every page, in the reader's
language: the active locale's named formats (carttrack/formats: "2 Nov 2026", "2. November 2026",
"2026年11月2日") and its decimal separator ("0.9", "0,9"). Stored values are never changed."""

import re
from datetime import date, datetime

from django import template
from django.utils import formats as locale_formats
from django.utils import timezone

from patients import formats, units

register = template.Library()

human_date = formats.human_date

_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def localize_decimal(text: str) -> str:
    """A number written with a decimal point, with the active language's separator instead."""
    separator = locale_formats.get_format("DECIMAL_SEPARATOR")
    return _DECIMAL_POINT.sub(separator, text) if separator != "." else text


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


@register.filter(name="human_date")
def human_date_filter(value) -> str:
    """A date (or a datetime's local date, or an ISO date from an alert's JSON) in the active
    language's DATE_FORMAT."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = _local(value).date()
    if not isinstance(value, date):
        return str(value)
    return locale_formats.date_format(value, "DATE_FORMAT")


@register.filter(name="human_datetime")
def human_datetime_filter(value) -> str:
    if value is None or value == "":
        return "—"
    if not isinstance(value, datetime):
        return human_date_filter(value)
    return locale_formats.date_format(_local(value), "DATETIME_FORMAT")


@register.filter
def canonical_value(result) -> str:
    return localize_decimal(formats.canonical_value(result)) if result else ""


@register.filter
def entered_value(result) -> str:
    if not result:
        return ""
    if result.qualifier:
        return formats.entered_value(result)
    number = localize_decimal(formats.plain_number(result.value))
    return f"{number} {units.UNIT_LABELS.get(result.unit, result.unit)}"


@register.filter
def unit_label(code: str) -> str:
    return units.UNIT_LABELS.get(code, code)


@register.filter
def canonical_with_unit(result) -> str:
    """The canonical value with its unit (for a cell with no unit in its column heading)."""
    if not result:
        return ""
    text = localize_decimal(formats.canonical_value(result))
    if result.qualifier:
        return text
    return f"{text} {units.UNIT_LABELS.get(result.canonical_unit, result.canonical_unit)}"
