"""Django admin for every clinical model, with the audit history of each record.

Admin saves go through the same services as the browser pages, so validation, the audit trail
and alert re-evaluation are the same whichever door the data comes through.
"""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from patients import services
from patients.models import (
    Center,
    ClinicalEvent,
    ClinicianProfile,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)


@admin.register(Center)
class CenterAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "time_zone"]


@admin.register(ClinicianProfile)
class ClinicianProfileAdmin(SimpleHistoryAdmin):  # the center decides what a user sees
    list_display = ["user", "center", "email_low_severity"]
    list_filter = ["center"]


class ServiceSavedAdmin(SimpleHistoryAdmin):
    """Save and delete clinical records through the services (locks, audit, alerts)."""

    def save_model(self, request, obj, form, change):
        services.clinical_record_save(instance=obj, user=request.user)

    def delete_model(self, request, obj):
        services.clinical_record_delete(instance=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.clinical_record_delete(instance=obj, user=request.user)


@admin.register(Patient)
class PatientAdmin(SimpleHistoryAdmin):
    list_display = ["study_id", "center", "sex", "is_synthetic"]
    list_filter = ["center", "is_synthetic"]
    search_fields = ["study_id"]
    filter_horizontal = ["hematologists"]

    def save_model(self, request, obj, form, change):
        services.patient_save(patient=obj, user=request.user)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not request.user.has_perm("patients.view_identifiers"):
            fields = [f for f in fields if f not in ("mrn", "full_name")]
        return fields


@admin.register(Infusion)
class InfusionAdmin(ServiceSavedAdmin):
    list_display = ["patient", "infusion_number", "infusion_date", "product", "target_antigen"]
    list_filter = ["product"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]


@admin.register(LabResult)
class LabResultAdmin(ServiceSavedAdmin):
    list_display = ["patient", "analyte", "collected_at", "value", "unit", "qualifier"]
    list_filter = ["analyte", "specimen"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]
    readonly_fields = ["canonical_value", "canonical_unit", "entered_by", "entered_at"]
    date_hierarchy = "collected_at"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.entered_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ResponseAssessment)
class ResponseAssessmentAdmin(ServiceSavedAdmin):
    list_display = ["patient", "assessed_on", "response", "mrd_status"]
    list_filter = ["response"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]


@admin.register(ClinicalEvent)
class ClinicalEventAdmin(ServiceSavedAdmin):
    list_display = ["patient", "kind", "event_date"]
    list_filter = ["kind"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]


@admin.register(PreemptiveTherapy)
class PreemptiveTherapyAdmin(ServiceSavedAdmin):
    list_display = ["patient", "start_date", "category", "agent"]
    list_filter = ["category", "agent"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]
