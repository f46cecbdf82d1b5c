from django import template
from django.utils.translation import gettext

from patients.templatetags.clinical import localize_decimal

register = template.Library()


def localized(filter_function):
    """The filter's text with the active language's decimal separator (0.05 → 0,05 in German)."""

    def wrapper(value):
        return localize_decimal(filter_function(value))

    wrapper.__name__ = filter_function.__name__
    wrapper.__doc__ = filter_function.__doc__
    return wrapper


@register.filter
@localized
def pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


@register.filter
@localized
def days(value) -> str:
    return gettext("not reached") if value is None else f"{value:.0f} d"


@register.filter
@localized
def num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


@register.filter
@localized
def pvalue(value) -> str:
    if value is None:
        return gettext("p not computed")
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def small(value) -> str:
    """A count from a pooled table: None means suppressed (a small cell, or one that would give a
    small cell away)."""
    return gettext("suppressed") if value is None else str(value)


@register.filter
@localized
def proportion_ci(p) -> str:
    """ "62.5 % (40.9–80.1)" from a proportion dict; "suppressed" or "—" without one."""
    if p is None:
        return gettext("suppressed")
    if p.get("proportion") is None:
        return "—"
    return (
        f"{p['proportion'] * 100:.1f} % ({p['lower'] * 100:.1f}–{p['upper'] * 100:.1f}), "
        f"{p['successes']}/{p['n']}"
    )
