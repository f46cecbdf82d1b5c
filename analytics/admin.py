from django.contrib import admin
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from analytics.models import DashboardSnapshot, RefreshRun


@admin.register(DashboardSnapshot)
class DashboardSnapshotAdmin(admin.ModelAdmin):
    """Snapshots are immutable: listed and inspected, never edited."""

    list_display = ["cohort_label", "computed_at", "n_patients", "duration_ms", "data_version"]
    list_filter = ["cohort_key"]
    # large JSON and CSV: see the dashboard; the left-out patients are shown as text
    exclude = ["report", "figures", "table_csv", "excluded"]
    readonly_fields = [
        "cohort_key",
        "cohort_label",
        "computed_at",
        "data_version",
        "n_patients",
        "options",
        "duration_ms",
        "excluded_patients",
    ]

    @admin.display(description=_("patients left out (schema problems)"))
    def excluded_patients(self, obj):
        rows = obj.excluded or []
        if not rows:
            return gettext("none")
        return "; ".join(
            f"{r['study_id']} ({r.get('center', '')}): {r['column']} {r['problem']}" for r in rows
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the figures a decision may have been based on


@admin.register(RefreshRun)
class RefreshRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "cohort_key",
        "status",
        "progress",
        "requested_by",
        "requested_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in RefreshRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
