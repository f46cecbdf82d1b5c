from django.urls import reverse
from django.utils.translation import gettext as _


def navigation(request):
    """The navigation bar's links and the signed-in user's open-alert count."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from monitoring.badge import alert_badge

    active, high = alert_badge(user)
    extra = []
    if user.has_perm("patients.add_labresult"):
        extra.append({"label": _("Import"), "url": reverse("imports:upload"), "app": "imports"})
    # No resolver match on a 404 (an unknown URL): no link is the current one.
    match = getattr(request, "resolver_match", None)
    current = (match.app_name or match.url_name or "") if match is not None else ""
    return {
        "nav_current": current,
        "nav_items": [
            {"label": _("Today"), "url": reverse("home"), "app": "home"},
            {
                "label": _("Alerts"),
                "url": reverse("monitoring:inbox"),
                "app": "monitoring",
                "badge": active or "",
                "badge_class": "high" if high else "",
            },
            {"label": _("Dashboard"), "url": reverse("analytics:dashboard"), "app": "analytics"},
            *extra,
        ],
    }
