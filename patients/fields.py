"""A form field for numbers typed as text, read by the one parser (`patients.numbers`).

`<input type=number>` lets the browser drop what it does not understand (Chromium reads "0,9" as
9 in some locales); a text field with inputmode=decimal sends exactly what was typed, and the
server decides, with a message when the text is ambiguous.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from patients.numbers import NumberFormatError, parse_decimal


class DecimalTextField(forms.CharField):
    def __init__(self, *, max_digits: int = 20, decimal_places: int = 6, **kwargs):
        self.max_digits, self.decimal_places = max_digits, decimal_places
        for unused in ("max_value", "min_value", "step_size", "localize"):
            kwargs.pop(unused, None)
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"}
            ),
        )
        super().__init__(**kwargs)

    def to_python(self, value) -> Decimal | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return parse_decimal(
                text, max_digits=self.max_digits, decimal_places=self.decimal_places
            )
        except NumberFormatError as error:
            raise ValidationError(str(error), code="invalid_number") from None

    def prepare_value(self, value):
        if isinstance(value, Decimal):
            return f"{value.normalize():f}" if value.is_finite() else str(value)
        return value

    def has_changed(self, initial, data) -> bool:
        try:
            return self.to_python(data) != (
                None if initial in self.empty_values else Decimal(str(initial))
            )
        except (ValidationError, ArithmeticError, ValueError):
            return True


def decimal_formfield(db_field, **kwargs) -> DecimalTextField:
    """The DecimalTextField for a model DecimalField (for ModelForms and the admin)."""
    return DecimalTextField(
        max_digits=db_field.max_digits,
        decimal_places=db_field.decimal_places,
        required=not db_field.blank,
        label=kwargs.get("label", db_field.verbose_name.capitalize()),
        help_text=db_field.help_text,
        validators=kwargs.get("validators", []),
    )
