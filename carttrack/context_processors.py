from django.urls import reverse


def navigation(request):
    """The navigation bar's links and the signed-in user's open-alert count."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from monitoring.badge import alert_badge

    active, high = alert_badge(user)
    extra = []
    if user.has_perm("patients.add_labresult"):
        extra.append({"label": "Import", "url": reverse("imports:upload"), "app": "imports"})
    return {
        "nav_items": [
            {"label": "Today", "url": reverse("home"), "app": "home"},
            {
                "label": "Alerts",
                "url": reverse("monitoring:inbox"),
                "app": "monitoring",
                "badge": active or "",
                "badge_class": "high" if high else "",
            },
            {"label": "Dashboard", "url": reverse("analytics:dashboard"), "app": "analytics"},
            *extra,
        ]
    }
