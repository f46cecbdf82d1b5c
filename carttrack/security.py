"""Request-level protections (settings in carttrack/settings.py, README "Configuration").

- ``SessionTimeoutMiddleware``: a session ends after SESSION_IDLE_SECONDS without a request
  (idle logoff, 15 minutes) and SESSION_ABSOLUTE_SECONDS after sign-in (12 hours), whatever
  the activity; the user is sent to the sign-in page with the reason.
- ``NoStoreMiddleware``: every response to a signed-in user (pages, CSV files, JSON) carries
  ``Cache-Control: no-store``, so patient data stay out of browser and proxy caches. Static files
  are served by WhiteNoise before this middleware and keep their long cache lifetime.
- ``client_address``: the client's address behind TRUSTED_PROXY_COUNT reverse proxies.
- ``server_error`` (handler500): PostgreSQL unreachable (restarted, failed over) gives a plain
  503 page that says so, not a traceback; the next request reconnects by itself.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext

logger = logging.getLogger(__name__)

STARTED, SEEN = "carttrack_signed_in_at", "carttrack_last_seen_at"


def session_clock_start(sender, request, user, **kwargs) -> None:
    """On sign-in (``user_logged_in``, connected in audit.apps): both limits count from now,
    not from the first request after it (issue 21: a session opened and left was idle-free)."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[STARTED] = now
        request.session[SEEN] = now


class SessionTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            started = request.session.setdefault(STARTED, now)
            seen = request.session.get(SEEN, now)
            reason = None
            if now - started > settings.SESSION_ABSOLUTE_SECONDS:
                reason = gettext("Your session reached its time limit; please sign in again.")
            elif now - seen > settings.SESSION_IDLE_SECONDS:
                reason = gettext("You were signed out after a period without activity.")
            if reason:
                logout(request)
                messages.info(request, reason)
                if request.path.startswith("/api/") or request.headers.get("accept", "").startswith(
                    "application/json"
                ):
                    return HttpResponse(status=401)
                return redirect(
                    f"{settings.LOGIN_URL_PATH}?{urlencode({'next': request.path}, safe='/')}"
                )
            request.session[SEEN] = now
        return self.get_response(request)


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # A response that declares itself immutable (a dashboard snapshot's figure data:
        # aggregates, small cells suppressed, never a patient's row) keeps its private cache.
        immutable = "immutable" in response.get("Cache-Control", "")
        if user is not None and user.is_authenticated and not immutable:
            add_never_cache_headers(response)  # no-store, no-cache, must-revalidate, private
        return response


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the entry of
    X-Forwarded-For that the outermost trusted proxy appended (entries further left were
    written by the client and prove nothing). Used by axes (lockout) and the access audit.

    django-ipware was tried first: its ``proxy_count`` counts proxies listed *inside* the
    header, so behind one nginx (header = the client's address) it returned no address."""
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote


def server_error(request):
    """handler500: a database that cannot be reached (restarted, failed over) gets a 503 page
    that says so and asks to retry; the next request opens a new connection by itself. Any
    other error gets the plain 500 page. Never a traceback."""
    error = sys.exc_info()[1]
    if isinstance(error, (OperationalError, InterfaceError)):
        logger.error("Database unavailable: %s", error)
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = "30"
    else:
        response = HttpResponse(render_to_string("500.html"), status=500)
    add_never_cache_headers(response)
    return response
