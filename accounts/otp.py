"""The optional TOTP second factor (django-otp), required for the groups in OTP_REQUIRED_GROUPS.

A user with a confirmed authenticator must enter its code after the password; a user whose role
requires one and has none is sent to set it up before anything else. API calls with a token
(laboratory systems) are not affected: a token is a credential of its own.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device


def otp_required_for(user) -> bool:
    groups = set(settings.OTP_REQUIRED_GROUPS)
    return bool(groups) and user.groups.filter(name__in=groups).exists()


def _next(request) -> str:
    return urlencode({"next": request.path}, safe="/")


class OTPRequiredMiddleware:
    """After django_otp's OTPMiddleware: a signed-in session that still owes its second factor
    reaches only the second-factor pages, sign-out and the password pages."""

    OPEN = ("accounts:otp_verify", "accounts:otp_setup", "logout")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and request.path not in {reverse(name) for name in self.OPEN}
        ):
            if user_has_device(user, confirmed=True):
                return redirect(f"{reverse('accounts:otp_verify')}?{_next(request)}")
            if otp_required_for(user):
                return redirect(f"{reverse('accounts:otp_setup')}?{_next(request)}")
        return self.get_response(request)
