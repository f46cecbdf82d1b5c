"""The optional TOTP second factor (django-otp), required for the groups in OTP_REQUIRED_GROUPS.

A user with a confirmed authenticator must enter its code after the password; a user whose role
requires one and has none is sent to set it up before anything else. API calls with a token
(laboratory systems) are not affected: a token is a credential of its own.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

RECOVERY_CODES = 10
RECOVERY_DEVICE = "Recovery codes"


def otp_required_for(user) -> bool:
    groups = set(settings.OTP_REQUIRED_GROUPS)
    return bool(groups) and user.groups.filter(name__in=groups).exists()


@transaction.atomic
def recovery_codes_issue(user) -> list[str]:
    """A new set of one-time recovery codes for a user who lost their authenticator app; the
    previous set stops working. Shown once: only the user's copy is kept."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_DEVICE, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__name=RECOVERY_DEVICE).count()


def _next(request) -> str:
    return urlencode({"next": request.path}, safe="/")


def owes_code(user) -> bool:
    """Signed in with the password only, by a user who has an authenticator: the code is owed
    before anything else, setting up another authenticator included (a stolen password must
    not be able to add its own device)."""
    return not user.is_verified() and user_has_device(user, confirmed=True)


class OTPRequiredMiddleware:
    """After django_otp's OTPMiddleware: a signed-in session that still owes its second factor
    reaches only the code page and sign-out; a user whose role requires a second factor and who
    has none reaches only the set-up page and sign-out."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return self.get_response(request)
        if request.session.get(BACKEND_SESSION_KEY) == "accounts.oidc.ProviderBackend":
            return self.get_response(request)  # signed in at the provider: its second factor
        open_to_all = request.path == reverse("logout")
        if owes_code(user):
            if not open_to_all and request.path != reverse("accounts:otp_verify"):
                return redirect(f"{reverse('accounts:otp_verify')}?{_next(request)}")
        elif otp_required_for(user):
            if not open_to_all and request.path != reverse("accounts:otp_setup"):
                return redirect(f"{reverse('accounts:otp_setup')}?{_next(request)}")
        return self.get_response(request)
