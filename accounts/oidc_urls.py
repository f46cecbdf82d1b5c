"""/oidc/: mozilla-django-oidc's sign-in and callback (open before sign-in) and our
back-channel logout. 404 while OIDC_OP_ISSUER is empty."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.urls import path
from mozilla_django_oidc import views

from accounts.oidc import backchannel_logout


def _when_configured(view):
    def wrapped(request, *args, **kwargs):
        if not getattr(settings, "OIDC_OP_ISSUER", ""):
            raise Http404
        return view(request, *args, **kwargs)

    return login_not_required(wrapped)


urlpatterns = [
    path(
        "callback/",
        _when_configured(views.OIDCAuthenticationCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path(
        "authenticate/",
        _when_configured(views.OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path("backchannel-logout/", backchannel_logout, name="oidc_backchannel_logout"),
]
