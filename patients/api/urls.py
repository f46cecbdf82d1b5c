from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView

from patients.api import views

app_name = "api"

# The API authenticates itself (session or token) and answers 401/403 in JSON, so the site's
# redirect-to-login middleware steps aside; every view still requires an authenticated user.
urlpatterns = [
    path("v1/alerts/", login_not_required(views.alert_list), name="alerts"),
    # JSON first, so that its errors (an unknown ?format=) are JSON like every API error;
    # ?format=yaml still gives YAML.
    path(
        "schema/",
        login_not_required(
            SpectacularAPIView.as_view(
                renderer_classes=[
                    OpenApiJsonRenderer,
                    OpenApiJsonRenderer2,
                    OpenApiYamlRenderer,
                    OpenApiYamlRenderer2,
                ]
            )
        ),
        name="schema",
    ),
]
