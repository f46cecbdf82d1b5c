"""Template filters that write dates and values the same way on every page."""

from django import template

from patients import formats, units

register = template.Library()

human_date = formats.human_date


@register.filter(name="human_date")
def human_date_filter(value) -> str:
    return formats.human_date(value)


@register.filter(name="human_datetime")
def human_datetime_filter(value) -> str:
    return formats.human_datetime(value)


@register.filter
def canonical_value(result) -> str:
    return formats.canonical_value(result) if result else ""


@register.filter
def entered_value(result) -> str:
    return formats.entered_value(result) if result else ""


@register.filter
def unit_label(code: str) -> str:
    return units.UNIT_LABELS.get(code, code)


@register.filter
def canonical_with_unit(result) -> str:
    """The canonical value with its unit (for a cell with no unit in its column heading)."""
    if not result:
        return ""
    text = formats.canonical_value(result)
    if result.qualifier:
        return text
    return f"{text} {units.UNIT_LABELS.get(result.canonical_unit, result.canonical_unit)}"
