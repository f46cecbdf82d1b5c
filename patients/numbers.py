"""The one parser for numbers typed as text (CLINICAL.md section 2: a wrong number never enters
silently).

Pages, the admin, the API and imports all call `parse_decimal`: "0.9" and "0,9" both mean 0.9;
anything that could be read two ways is refused with a message saying how to write it:

- a thousands separator or a grouping ("1,234" and "1.234" are one thousand two hundred and
  thirty-four in one country and one point two three four in another; "1.234,5"; "1 234");
- two decimal separators, letters, exponents ("1E+999999"), "inf", "nan", signs other than a
  leading minus (a negative value is then refused by the clinical checks, with their message);
- more digits than the database keeps.

Pure: text in, Decimal out, or `NumberFormatError` (a ValueError) with a clinician's message.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# An integer part with or without one decimal separator (either "." or ","), or a leading one.
_PLAIN = re.compile(r"-?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
# One separator followed by exactly three digits after a 1-3 digit integer part not starting with
# 0: a thousands grouping in half of the world, a decimal in the other half.
_GROUPING = re.compile(r"-?[1-9][0-9]{0,2}[.,][0-9]{3}")
_MAX_TEXT = 40

HOW_TO_WRITE = _(
    "Write digits with at most one decimal separator, e.g. 0.9 or 0,9; no thousands separator"
)


class NumberFormatError(ValueError):
    """The text is not one unambiguous number; the message says how to write it."""


def parse_decimal(
    text: str | int | Decimal,
    *,
    max_digits: int = 20,
    decimal_places: int = 6,
) -> Decimal:
    """Read a number typed as text; "0,9" == "0.9". Raises NumberFormatError with a message.

    `max_digits`/`decimal_places` are those of the column the value goes to, so an
    overlong number is refused here with a readable message rather than by the database.
    Integers and Decimals (from JSON numbers, which have one decimal point by definition)
    are checked for finiteness and size only.
    """
    if isinstance(text, bool):
        raise NumberFormatError(gettext("Enter a number, not %(text)r.") % {"text": text})
    if isinstance(text, int):
        number = Decimal(text)
    elif isinstance(text, Decimal):
        if not text.is_finite():
            raise NumberFormatError(gettext("Enter a finite number (not infinity or NaN)."))
        number = text
    elif isinstance(text, str):
        number = _parse_text(text)
    else:
        raise NumberFormatError(
            gettext('Enter a number as text, e.g. "0.9", not %(type)s.')
            % {"type": type(text).__name__}
        )
    return _check_size(number, max_digits=max_digits, decimal_places=decimal_places)


def _parse_text(text: str) -> Decimal:
    cleaned = text.strip()
    if not cleaned:
        raise NumberFormatError(gettext("Enter a number."))
    shown = cleaned if len(cleaned) <= _MAX_TEXT else cleaned[:_MAX_TEXT] + "…"
    if len(cleaned) > _MAX_TEXT:
        raise NumberFormatError(
            gettext("“%(text)s” is too long for a number. %(how)s.")
            % {"text": shown, "how": HOW_TO_WRITE}
        )
    if not _PLAIN.fullmatch(cleaned):
        if sum(cleaned.count(sep) for sep in ".,") > 1:
            raise NumberFormatError(
                gettext(
                    "“%(text)s” has more than one separator. %(how)s "
                    "(one thousand two hundred is 1200)."
                )
                % {"text": shown, "how": HOW_TO_WRITE}
            )
        raise NumberFormatError(
            gettext(
                "“%(text)s” is not a plain number (only digits and one decimal separator; no "
                "letters, spaces, exponents or units). %(how)s."
            )
            % {"text": shown, "how": HOW_TO_WRITE}
        )
    if _GROUPING.fullmatch(cleaned):
        digits = cleaned.replace(",", "").replace(".", "")
        decimal = cleaned.replace(",", ".")
        raise NumberFormatError(
            gettext(
                "“%(text)s” is ambiguous: it can mean %(digits)s (with a thousands separator) "
                "or %(decimal)s. Write %(digits)s for the whole number, or the decimal with one "
                "more digit, e.g. %(decimal)s0."
            )
            % {"text": shown, "digits": digits, "decimal": decimal}
        )
    return Decimal(cleaned.replace(",", "."))


def _check_size(number: Decimal, *, max_digits: int, decimal_places: int) -> Decimal:
    _sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        raise NumberFormatError(gettext("Enter a finite number (not infinity or NaN)."))
    whole_digits_allowed = max_digits - decimal_places
    if any(digits) and len(digits) + exponent > whole_digits_allowed:
        raise NumberFormatError(
            gettext("The number is too large: at most %(n)s digits before the separator.")
            % {"n": whole_digits_allowed}
        )
    if not any(digits):
        return Decimal(0)
    if exponent < -decimal_places:
        # Trailing zeros after the kept decimals are harmless; real digits there are not.
        significant = number.normalize()
        if significant.as_tuple().exponent < -decimal_places:
            raise NumberFormatError(
                gettext("Too many decimals: at most %(n)s digits after the separator.")
                % {"n": decimal_places}
            )
        number = significant if significant.as_tuple().exponent <= 0 else significant.quantize(1)
    return number
