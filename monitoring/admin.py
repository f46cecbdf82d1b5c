from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from monitoring import notifications, recipients
from monitoring.models import (
    Alert,
    AlertEscalation,
    AlertEvent,
    CenterAlerting,
    Notification,
    RuleParameterSet,
)
from patients.admin import TypedNumbersMixin


@admin.register(RuleParameterSet)
class RuleParameterSetAdmin(TypedNumbersMixin, admin.ModelAdmin):
    """Each save stores a new version and retires the previous one (versions are immutable).

    The add and change forms have a "Preview" button: it posts the same form to ``preview/``,
    which runs the engine over the center's patients without writing anything and shows the
    alerts the version would raise, withdraw or keep, with a button that saves it as shown.
    """

    list_display = [
        "label",
        "center",
        "is_current",
        "window_days",
        "bcell_threshold",
        "bcell_pct_threshold",
        "require_confirmation",
        "created_at",
        "created_by",
    ]
    list_filter = ["center", "is_current"]
    readonly_fields = ["version", "is_current", "created_at", "created_by"]

    def save_model(self, request, obj, form, change):
        from monitoring.services import rule_parameters_publish

        values = {f: getattr(obj, f) for f in form.cleaned_data if f not in ("center", "note")}
        saved = rule_parameters_publish(
            center=obj.center, user=request.user, note=obj.note, values=values
        )
        obj.pk, obj.version = saved.pk, saved.version

    def has_delete_permission(self, request, obj=None):
        return False  # alerts name these versions

    def get_urls(self):
        preview = self.admin_site.admin_view(require_POST(self.preview_view))
        return [
            path("preview/", preview, name="monitoring_ruleparameterset_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        from monitoring.preview import rule_change_preview

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.get_form(request)(request.POST)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Preview of a rule-parameter change"),
            "form": form,
            "save_url": reverse("admin:monitoring_ruleparameterset_add"),
        }
        # The add form takes its initial values from the query string: back with them filled in.
        values = {k: v for k, v in request.POST.items() if not k.startswith(("_", "csrf"))}
        context["back_url"] = f"{context['save_url']}?{urlencode(values)}"
        if form.is_valid():
            try:
                params = form.instance.to_rule_params()
            except ValueError as error:  # clean() reports these on the form; belt and braces
                raise ValidationError(str(error)) from error
            preview = rule_change_preview(center=form.cleaned_data.get("center"), params=params)
            context["preview"] = preview
            context["by_rule"] = preview.by_rule()
        return TemplateResponse(request, "admin/monitoring/ruleparameterset/preview.html", context)


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    readonly_fields = ["old_status", "new_status", "reason", "user", "created_at"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["patient", "rule", "severity", "status", "day", "raised_at", "outcome"]
    list_filter = ["rule", "severity", "status", "outcome"]
    search_fields = ["patient__study_id"]
    inlines = [AlertEventInline]
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):
        return False  # alerts come from the rules engine

    def has_delete_permission(self, request, obj=None):
        return False  # withdrawn, never deleted

    def changelist_view(self, request, extra_context=None):
        warn_centers_without_recipients(request)
        return super().changelist_view(request, extra_context)


class UndeliveredFilter(admin.SimpleListFilter):
    title = _("delivery")
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("undelivered", _("Undelivered (failed for good)"))]

    def queryset(self, request, queryset):
        if self.value() == "undelivered":
            return notifications.undelivered(queryset)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "alert",
        "recipient",
        "channel",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "last_error",
    ]
    list_filter = [UndeliveredFilter, "status", "channel"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False  # written by the outbox with their alert

    def has_delete_permission(self, request, obj=None):
        return False  # the record that an alert was (or could not be) sent

    @admin.action(description=_("Retry sending (after the cause is fixed)"))
    def retry(self, request, queryset):
        count = notifications.notifications_retry(ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext(
                "%(count)s undeliverable notification queued again.",
                "%(count)s undeliverable notifications queued again.",
                count,
            )
            % {"count": count},
        )


def warn_centers_without_recipients(request) -> None:
    """A center with nobody to notify is a visible problem, not a silent one."""
    for center in recipients.centers_without_recipients():
        messages.warning(
            request,
            gettext(
                "%(center)s: nobody to notify. No active clinician (Clinicians group) of this "
                "center has an e-mail address, so a high alert of a patient without a responsible "
                "clinician, and every escalation, reaches nobody."
            )
            % {"center": center},
        )


@admin.register(CenterAlerting)
class CenterAlertingAdmin(admin.ModelAdmin):
    """A center's staleness limit, escalation hours and intake team (empty: the settings)."""

    list_display = [
        "center",
        "stale_after_days",
        "escalate_after_hours",
        "leads_after_hours",
        "recipients",
    ]
    filter_horizontal = ["intake_team"]

    @admin.display(description=_("Clinicians who receive e-mail"))
    def recipients(self, obj):
        found = recipients.center_clinicians({obj.center_id}).get(obj.center_id, [])
        return len(found) or gettext("NONE: high alerts reach nobody")

    def changelist_view(self, request, extra_context=None):
        warn_centers_without_recipients(request)
        return super().changelist_view(request, extra_context)


@admin.register(AlertEscalation)
class AlertEscalationAdmin(admin.ModelAdmin):
    list_display = ["alert", "step", "created_at", "recipients", "note"]
    list_filter = ["step"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
