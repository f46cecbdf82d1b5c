"""Second-factor pages: set up an authenticator app (TOTP), enter its code (or a one-time
recovery code) at sign-in, and make new recovery codes."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import LoginView
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods
from django_otp import devices_for_user, match_token
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.otp import (
    otp_required_for,
    owes_code,
    recovery_codes_issue,
    recovery_codes_left,
)

_RECOVERY_SESSION = "accounts:recovery_codes"
# django-otp waits longer after each wrong code (1 s, 2 s, 4 s ...) before it checks another.
_WAIT = _("Too many wrong codes in a row: wait a few seconds, then try again.")


class TokenForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\d{6}$",
        label=_("6-digit code from your authenticator app"),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        error_messages={"invalid": _("Enter the 6 digits your authenticator app shows.")},
    )


class SignInCodeForm(forms.Form):
    """At sign-in: the app's 6 digits or one of the 8-character recovery codes (as printed,
    in any case, with or without spaces and hyphens)."""

    token = forms.CharField(
        label=_("6-digit code from your authenticator app, or a recovery code"),
        max_length=40,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "none"}),
    )

    def clean_token(self) -> str:
        token = re.sub(r"[\s-]", "", self.cleaned_data["token"]).lower()
        if not re.fullmatch(r"\d{6}|[a-z2-7]{8}", token):
            raise forms.ValidationError(
                gettext(
                    "Enter the 6 digits your authenticator app shows, or a recovery code "
                    "(8 letters and digits)."
                )
            )
        return token


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return "/"
    return target


def _recovery_page(request) -> str:
    return f"{reverse('accounts:recovery_codes')}?{urlencode({'next': _next(request)})}"


@require_http_methods(["GET", "POST"])
def otp_verify(request):
    form = SignInCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        waiting = not any(d.verify_is_allowed()[0] for d in devices_for_user(request.user))
        device = None if waiting else match_token(request.user, form.cleaned_data["token"])
        if waiting:
            form.add_error("token", _WAIT)
        elif device is not None:
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = recovery_codes_left(request.user)
                messages.warning(
                    request,
                    ngettext(
                        "You signed in with a recovery code; %(left)d of them left, each works "
                        "once. Set up your authenticator app again, or make new codes, under "
                        "your name at the top: Password and second factor.",
                        "You signed in with a recovery code; %(left)d of them left, each works "
                        "once. Set up your authenticator app again, or make new codes, under "
                        "your name at the top: Password and second factor.",
                        left,
                    )
                    % {"left": left},
                )
            return redirect(_next(request))
        else:
            form.add_error(
                "token", gettext("That code is not valid (or was already used). Try the next one.")
            )
    return render(request, "registration/otp_verify.html", {"form": form, "next": _next(request)})


@require_http_methods(["GET", "POST"])
def otp_setup(request):
    """Add an authenticator: the key is shown once as text and an otpauth:// link; the device
    counts only after a code from it has been entered. A user who owes the code of an
    authenticator they already have enters it first (the middleware sends them there too)."""
    if owes_code(request.user):
        return redirect(f"{reverse('accounts:otp_verify')}?{urlencode({'next': _next(request)})}")
    device, _ = TOTPDevice.objects.get_or_create(
        user=request.user, confirmed=False, defaults={"name": "Authenticator app"}
    )
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            form.add_error("token", _WAIT)
        elif device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            messages.success(request, gettext("Your authenticator app is set up."))
            request.session[_RECOVERY_SESSION] = recovery_codes_issue(request.user)
            return redirect(_recovery_page(request))
        else:
            form.add_error(
                "token", gettext("That code does not match; check the app's clock and try again.")
            )
    from base64 import b32encode

    context = {
        "form": form,
        "next": _next(request),
        "secret": b32encode(device.bin_key).decode(),
        "config_url": device.config_url,
        "required": otp_required_for(request.user),
    }
    return render(request, "registration/otp_setup.html", context)


@require_http_methods(["GET", "POST"])
def recovery_codes(request):
    """New codes are shown once, right after they are made (from the session, so a reload or
    the back button does not show them again); otherwise the page says how many are left and
    makes a new set on request (which cancels the old one). Codes belong to an authenticator
    app: without a confirmed one the page sends the user to set it up first."""
    has_app = TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()
    if request.method == "POST" and has_app:
        request.session[_RECOVERY_SESSION] = recovery_codes_issue(request.user)
        return redirect(_recovery_page(request))
    context = {
        "codes": request.session.pop(_RECOVERY_SESSION, None),
        "left": recovery_codes_left(request.user),
        "has_app": has_app,
        "next": _next(request),
    }
    return render(request, "registration/recovery_codes.html", context)


class SignInView(LoginView):
    """The sign-in page; with OpenID Connect configured it also offers the provider's sign-in
    (local accounts keep the form: break-glass administrators, the embedded default)."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = bool(getattr(settings, "OIDC_OP_ISSUER", ""))
        return context
