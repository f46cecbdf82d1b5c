from django.contrib import admin

from audit.models import AccessEvent


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin):
    """Searchable, read-only: nobody adds, changes or deletes an access event."""

    list_display = ["at", "username", "kind", "target", "address", "view", "status"]
    list_filter = ["kind", "at"]
    search_fields = ["username", "target", "address", "path"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AccessEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
