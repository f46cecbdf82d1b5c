"""Django admin for every clinical model, with the audit history of each record.

Admin saves go through the same services as the browser pages, so validation, the audit trail
and alert re-evaluation are the same whichever door the data comes through.
"""

from django import forms
from django.contrib import admin
from django.db import models
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from patients import services
from patients.days import LocalTimeError, at_local_time
from patients.fields import decimal_formfield
from patients.models import (
    Center,
    ClinicalEvent,
    ClinicianProfile,
    Infusion,
    LabResult,
    Patient,
    PlausibilityLimits,
    PreemptiveTherapy,
    ResponseAssessment,
)


class TypedNumbersMixin:
    """Numbers are typed as text and read by the one parser (patients.numbers), as on the pages."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.DecimalField) and db_field.editable:
            return decimal_formfield(db_field)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Center)
class CenterAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "time_zone"]


@admin.register(ClinicianProfile)
class ClinicianProfileAdmin(SimpleHistoryAdmin):  # the center decides what a user sees
    list_display = ["user", "center", "email_low_severity"]
    list_filter = ["center"]


class ServiceSavedAdmin(TypedNumbersMixin, SimpleHistoryAdmin):
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


class LabResultAdminForm(forms.ModelForm):
    """The collection time is typed and shown in the patient's center's zone, as on the pages
    (the admin would otherwise read it in the server's zone)."""

    class Meta:
        model = LabResult
        fields = [
            "patient",
            "analyte",
            "specimen",
            "collected_at",
            "value",
            "unit",
            "qualifier",
            "method",
            "plausibility_confirmed",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.collected_at:
            zone = self.instance.patient.center.tzinfo
            self.initial["collected_at"] = self.instance.collected_at.astimezone(zone).replace(
                tzinfo=None
            )
        self.fields["collected_at"].help_text = "Local time of the patient's center."
        self.initial["plausibility_confirmed"] = False  # a confirmation is for the value shown

    def clean(self):
        cleaned = super().clean()
        patient, moment = cleaned.get("patient"), cleaned.get("collected_at")
        if patient is not None and moment is not None:
            wall_clock = timezone.localtime(moment).replace(tzinfo=None)
            try:
                cleaned["collected_at"] = at_local_time(wall_clock, patient.center.tzinfo)
            except LocalTimeError as error:
                self.add_error("collected_at", str(error))
        return cleaned


@admin.register(LabResult)
class LabResultAdmin(ServiceSavedAdmin):
    form = LabResultAdminForm
    list_display = ["patient", "analyte", "collected_at", "value", "unit", "qualifier"]
    list_filter = ["analyte", "specimen"]
    search_fields = ["patient__study_id"]
    autocomplete_fields = ["patient"]
    readonly_fields = [
        "canonical_value",
        "canonical_unit",
        "entered_by",
        "entered_at",
        "plausibility_warning",
        "plausibility_confirmed_by",
    ]
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


@admin.register(PlausibilityLimits)
class PlausibilityLimitsAdmin(TypedNumbersMixin, admin.ModelAdmin):
    """Each save stores a new version and retires the previous one (versions are immutable)."""

    list_display = [
        "label",
        "center",
        "is_current",
        "bcell_abs_soft",
        "bcell_abs_hard",
        "alc_soft",
        "alc_hard",
        "created_at",
        "created_by",
    ]
    list_filter = ["center", "is_current"]
    readonly_fields = ["version", "is_current", "created_at", "created_by"]

    def save_model(self, request, obj, form, change):
        values = {f: getattr(obj, f) for f in form.cleaned_data if f not in ("center", "note")}
        saved = services.plausibility_limits_publish(
            center=obj.center, user=request.user, note=obj.note, values=values
        )
        obj.pk, obj.version = saved.pk, saved.version

    def has_delete_permission(self, request, obj=None):
        return False  # confirmed values name these versions
