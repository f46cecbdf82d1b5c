"""The API's lab batch (JSON) as import records, each named by its place in the request.

    {"samples": [{"study_id": "CT-0007", "collected_at": "2025-03-15T08:30:00+01:00",
                  "values": [{"analyte": "pb_bcell_abs", "value": "0.012", "unit": "10^9/L"}]}]}

The serializer parses (types, choices); the import path validates. Problems the serializer finds
are flattened to the same places as the import's own (`samples[1].values[0].unit`).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from patients import units
from patients.ingest.records import Batch, LabValueRecord, SampleRecord

MAX_SAMPLES = 200_000  # beyond this even a background job is refused: split the batch


class LabValueSerializer(serializers.Serializer):
    analyte = serializers.ChoiceField(choices=list(units.ANALYTES))
    # Issue 8's server-side decimal parser ("0,9" and "0.9") replaces this field.
    value = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True
    )
    unit = serializers.ChoiceField(choices=list(units.UNIT_LABELS))
    qualifier = serializers.ChoiceField(
        choices=[c for c, _ in units.QUALIFIER_CHOICES],
        required=False,
        allow_blank=True,
        default="",
    )
    method = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    confirmed = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The sender confirms a value outside the soft plausibility limit.",
    )


class SampleSerializer(serializers.Serializer):
    study_id = serializers.CharField(max_length=32)
    collected_at = serializers.DateTimeField(
        help_text="ISO 8601 with its UTC offset, e.g. 2025-03-15T08:30:00+01:00"
    )
    values = LabValueSerializer(many=True, allow_empty=False)


class LabBatchSerializer(serializers.Serializer):
    samples = SampleSerializer(many=True, allow_empty=False, max_length=MAX_SAMPLES)


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as {"samples[0].values[1].unit": [message, ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        items = errors.items()
    elif isinstance(errors, list) and errors and not isinstance(errors[0], str):
        items = ((str(i), e) for i, e in enumerate(errors))
    else:
        return {prefix or "__all__": [str(m) for m in errors]}
    for key, value in items:
        if not value:
            continue
        if str(key).isdigit():
            path = f"{prefix}[{key}]"
        elif key == "non_field_errors":
            path = prefix
        else:
            path = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten_errors(value, path))
    return out


def lab_batch_records(samples: list[dict]) -> Batch:
    return Batch(
        samples=[
            SampleRecord(
                place=f"samples[{i}]",
                study_id=sample["study_id"],
                collected_at=sample["collected_at"],
                values=[
                    LabValueRecord(
                        place=f"samples[{i}].values[{j}]",
                        analyte=v["analyte"],
                        value=v.get("value"),
                        unit=v["unit"],
                        qualifier=v.get("qualifier", ""),
                        method=v.get("method", ""),
                        confirmed=v.get("confirmed", False),
                    )
                    for j, v in enumerate(sample["values"])
                ],
            )
            for i, sample in enumerate(samples)
        ]
    )
