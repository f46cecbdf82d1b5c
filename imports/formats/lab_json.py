"""The API's lab batch (JSON) as import records, each named by its place in the request.

    {"samples": [{"study_id": "CT-0007", "collected_at": "2025-03-15T08:30:00+01:00",
                  "values": [{"analyte": "pb_bcell_abs", "value": "0.012", "unit": "10^9/L"}]}]}

The serializer parses (types, choices; numbers through patients.numbers, so "0,9" is 0.9 and
"1,234" is refused); the import path validates. A time without a UTC offset stays naive here
and is read in the patient's center's zone by the import path (patients.days.at_local_time).
Problems the serializer finds are flattened to the same places as the import's own
(`samples[1].values[0].unit`).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from patients import units
from patients.api.errors import flatten
from patients.api.serializers import LocalDateTimeField, TypedDecimalField
from patients.identifiers import STUDY_ID_MAX_LENGTH
from patients.ingest.records import Batch, LabValueRecord, SampleRecord

MAX_SAMPLES = 200_000  # beyond this even a background job is refused: split the batch


class LabValueSerializer(serializers.Serializer):
    analyte = serializers.ChoiceField(choices=list(units.ANALYTES))
    value = TypedDecimalField(required=False, allow_null=True)
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
        help_text="true once a person has checked a value that was refused as unusual (a soft "
        "plausibility limit) and found it correct; recorded in the audit trail.",
    )


class SampleSerializer(serializers.Serializer):
    study_id = serializers.CharField(max_length=STUDY_ID_MAX_LENGTH)
    collected_at = LocalDateTimeField(
        help_text="ISO 8601, e.g. 2025-03-15T08:30:00+01:00. Without an offset (or a bare date, "
        "read as 00:00) it is local time in the patient's center's time zone."
    )
    values = LabValueSerializer(many=True, allow_empty=False)


class LabBatchSerializer(serializers.Serializer):
    samples = SampleSerializer(many=True, allow_empty=False, max_length=MAX_SAMPLES)


class StoredSampleSerializer(serializers.Serializer):
    """One stored sample as the answer echoes it: the moment, the zone and its clinical day."""

    study_id = serializers.CharField()
    collected_at = serializers.CharField(help_text="In the center's time zone, with its offset.")
    time_zone = serializers.CharField()
    collected_on = serializers.DateField(help_text="The clinical date in the center's zone.")
    infusion_number = serializers.IntegerField(allow_null=True)
    day = serializers.IntegerField(allow_null=True, help_text="Day after that infusion (day 0).")
    ids = serializers.ListField(child=serializers.IntegerField())


class LabBatchResultSerializer(serializers.Serializer):
    saved = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.IntegerField())
    samples = StoredSampleSerializer(many=True)
    created = serializers.DictField(child=serializers.IntegerField())
    alerts = serializers.DictField(child=serializers.IntegerField())


def flatten_errors(errors: Any) -> dict[str, list[str]]:
    """DRF's nested errors as {"samples[0].values[1].unit": [message, ...]}."""
    return flatten(errors)


CONFIRM_HINT = 'If the value is correct, send it again with "confirmed": true.'


def lab_batch_records(samples: list[dict]) -> Batch:
    return Batch(
        confirm_hint=CONFIRM_HINT,
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
        ],
    )


def lab_job_records(payload: dict) -> tuple[Batch | None, dict]:
    """A background lab batch job's payload (the request body) as records, or its problems."""
    parsed = LabBatchSerializer(data=payload)
    if not parsed.is_valid():
        return None, flatten_errors(parsed.errors)
    return lab_batch_records(parsed.validated_data["samples"]), {}
