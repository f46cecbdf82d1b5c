from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from audit.models import AccessEvent

User = get_user_model()


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


admin.site.unregister(User)


@admin.register(User)
class AccountableUserAdmin(UserAdmin):
    """Users are deactivated, never deleted: the change history names each change's author,
    and PostgreSQL refuses to rewrite it (patients migration 0004), as the access log protects
    its readers. Untick *Active* to end someone's access."""

    def has_delete_permission(self, request, obj=None):
        return False
