"""Admin for the feeds' configuration (HL7 feeds, code mappings, unit aliases), the HL7 messages
as received and the held results."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from imports.held import held_results_retry, retry_message
from imports.models import CodeMapping, HeldResult, HL7Feed, HL7Message, UnitAlias


@admin.register(HL7Feed)
class HL7FeedAdmin(admin.ModelAdmin):
    list_display = [
        "sending_application",
        "sending_facility",
        "center",
        "identifier_type",
        "assigning_authority",
        "identifier_is",
        "history",
        "active",
    ]
    list_filter = ["center", "active"]


@admin.register(CodeMapping)
class CodeMappingAdmin(admin.ModelAdmin):
    list_display = ["center", "system", "code", "display", "analyte"]
    list_filter = ["center", "analyte"]
    search_fields = ["code", "display"]


@admin.register(UnitAlias)
class UnitAliasAdmin(admin.ModelAdmin):
    list_display = ["center", "text", "unit"]
    list_filter = ["center"]


@admin.register(HL7Message)
class HL7MessageAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "sending_application",
        "sending_facility",
        "control_id",
        "message_type",
        "ack_code",
        "state",
    ]
    list_filter = ["state", "ack_code"]
    search_fields = ["control_id"]
    readonly_fields = [f.name for f in HL7Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(HeldResult)
class HeldResultAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "center",
        "source",
        "sender",
        "identifier",
        "code",
        "value",
        "unit",
        "reason",
        "state",
    ]
    list_filter = ["state", "reason", "source", "center"]
    search_fields = ["identifier", "code", "sender"]
    # Dismissing needs a reason and goes through the service: on the center's queue page.
    readonly_fields = [f.name for f in HeldResult._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Retry the held results of these centers"))
    def retry(self, request, queryset) -> None:
        imported = still = 0
        for center_id in set(queryset.values_list("center_id", flat=True)):
            outcome = held_results_retry(
                center=queryset.filter(center_id=center_id).first().center, user=request.user
            )
            imported += outcome.imported
            still += outcome.still_held
        self.message_user(request, retry_message(imported, still), level=messages.INFO)
