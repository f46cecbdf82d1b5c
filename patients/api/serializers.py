"""API field types and shapes. They parse; the services and the import path validate and save
(the same rules as the pages). The lab batch's shapes are in imports.formats.lab_json."""

import math
from datetime import date, datetime, time
from decimal import Decimal

from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from patients.numbers import NumberFormatError, parse_decimal


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "example": "0.9"}, {"type": "number"}],
        "nullable": True,
        "description": 'A number, or text read like a typed number: "0.9" and "0,9" are 0.9; '
        'ambiguous text ("1,234", "1.234,5"), exponents, inf and NaN are refused.',
    }
)
class TypedDecimalField(serializers.Field):
    """A value read by the one number parser (patients.numbers), as on the pages."""

    def __init__(self, *, max_digits: int = 20, decimal_places: int = 6, **kwargs):
        self.max_digits, self.decimal_places = max_digits, decimal_places
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, float):
            if not math.isfinite(data):
                raise serializers.ValidationError(
                    gettext("Send a finite number (not infinity or NaN).")
                )
            data = Decimal(repr(data))
        try:
            return parse_decimal(
                data, max_digits=self.max_digits, decimal_places=self.decimal_places
            )
        except NumberFormatError as error:
            raise serializers.ValidationError(str(error)) from None

    def to_representation(self, value) -> str:
        return f"{value.normalize():f}"


# Dates far from today are refused before any time-zone arithmetic can overflow.
FIRST_YEAR, LAST_YEAR = 1900, 2200


@extend_schema_field(OpenApiTypes.STR)
class LocalDateTimeField(serializers.Field):
    """An ISO 8601 date-time or date. Without a UTC offset it is the patient's center's local
    time (a bare date is 00:00 there), never the server's: the view applies the zone once it
    knows the patient. Returns an aware datetime, or a naive one to be localised."""

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str) or len(data) > 40:
            raise serializers.ValidationError(self._how())
        text = data.strip()
        try:
            moment = parse_datetime(text)
            if moment is None:
                day = parse_date(text)
                moment = datetime.combine(day, time(0)) if day is not None else None
        except (ValueError, OverflowError):
            moment = None
        if moment is None:
            raise serializers.ValidationError(self._how())
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise serializers.ValidationError(
                gettext("The year must be between %(first)s and %(last)s.")
                % {"first": FIRST_YEAR, "last": LAST_YEAR}
            )
        return moment

    def to_representation(self, value) -> str:
        return value.isoformat() if isinstance(value, datetime | date) else str(value)

    @staticmethod
    def _how() -> str:
        return gettext(
            "Give a date-time like 2025-03-15T08:30:00+01:00 (with its UTC offset), or "
            "2025-03-15T08:30 (local time of the patient's center), or a date 2025-03-15."
        )


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study_id = serializers.CharField(source="patient.study_id")
    rule = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    title = serializers.CharField()
    infusion_number = serializers.IntegerField()
    day = serializers.IntegerField()
    raised_at = serializers.DateTimeField()
    url = serializers.CharField(source="get_absolute_url")


class AlertQuerySerializer(serializers.Serializer):
    severity = serializers.ChoiceField(
        choices=["", "high", "warning", "info", "reminder"], required=False, default=""
    )
    status = serializers.ChoiceField(
        choices=[
            "",
            "active",
            "all",
            "open",
            "acknowledged",
            "closed",
            "withdrawn",
            "historical",
        ],
        required=False,
        default="",
    )
