"""API input shapes. They parse; the services validate and save (the same rules as the pages)."""

from rest_framework import serializers

from patients import units


class LabValueSerializer(serializers.Serializer):
    analyte = serializers.ChoiceField(choices=list(units.ANALYTES))
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


class SampleSerializer(serializers.Serializer):
    study_id = serializers.CharField(max_length=32)
    collected_at = serializers.DateTimeField(
        help_text="ISO 8601 with its UTC offset, e.g. 2025-03-15T08:30:00+01:00"
    )
    values = LabValueSerializer(many=True, allow_empty=False)


class LabBatchSerializer(serializers.Serializer):
    samples = SampleSerializer(many=True, allow_empty=False, max_length=5000)


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
