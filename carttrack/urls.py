from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from accounts.views import SignInView
from carttrack import health, metrics
from monitoring.views import today


@login_not_required
def _favicon(request):
    # Resolved per request: the hashed name exists only after collectstatic.
    return redirect(static("favicon.svg"), permanent=True)


urlpatterns = [
    path("", today, name="home"),
    path("login/", login_not_required(SignInView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include("accounts.urls")),
    path("oidc/", include("accounts.oidc_urls")),
    path("patients/", include("patients.urls")),
    path("alerts/", include("monitoring.urls")),
    path("dashboard/", include("analytics.urls")),
    path("api/", include("imports.api.urls")),
    path("api/", include("patients.api.urls")),
    path("imports/", include("imports.urls")),
    path("admin/", admin.site.urls),
    # Operations (README "Operations"): no sign-in; /metrics only to METRICS_TOKEN or
    # METRICS_ALLOWED_IPS.
    path("health/live", health.live, name="health_live"),
    path("health/ready", health.ready, name="health_ready"),
    path("metrics", metrics.metrics, name="metrics"),
    # Browsers ask for /favicon.ico on every page, signed in or not: the static icon.
    path("favicon.ico", _favicon, name="favicon"),
]

# JSON for /api/ paths, the usual pages elsewhere (patients.api.errors).
handler400 = "patients.api.errors.json_or_html_400"
handler403 = "patients.api.errors.json_or_html_403"
handler404 = "patients.api.errors.json_or_html_404"
handler500 = "patients.api.errors.json_or_html_500"
