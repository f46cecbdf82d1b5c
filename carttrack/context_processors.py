from django.urls import reverse


def navigation(request):
    """The navigation bar's links and the signed-in user's open-alert count."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from monitoring.selectors import open_alert_count

    active, high = open_alert_count(user)
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
        ]
    }
