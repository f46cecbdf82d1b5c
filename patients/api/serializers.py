"""API output shapes."""

from rest_framework import serializers


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
