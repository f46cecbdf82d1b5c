"""Writes an AccessEvent for every successful read of patient data (see audit.models)."""

from __future__ import annotations

import logging

from audit.models import AccessEvent
from carttrack.security import client_address

logger = logging.getLogger(__name__)

#: URL names whose GET is a read of patient data, and the kind of read.
AUDITED_VIEWS = {
    "patients:detail": AccessEvent.PATIENT,
    "patients:history": AccessEvent.PATIENT,
    "patients:record_history": AccessEvent.PATIENT,
    "monitoring:alert": AccessEvent.ALERT,
    "analytics:export_csv": AccessEvent.EXPORT,
    "analytics:export_alerts": AccessEvent.EXPORT,  # per alert, with study IDs
    "analytics:export_bcells": AccessEvent.EXPORT,  # per sample, with study IDs
}
#: URL namespaces whose every GET is an API read (the schema excepted).
API_NAMESPACES = {"api", "imports_api"}


def _kind(match) -> str | None:
    if match is None:
        return None
    name = match.view_name
    if name in AUDITED_VIEWS:
        return AUDITED_VIEWS[name]
    if API_NAMESPACES & set(match.namespaces) and name != "api:schema":
        return AccessEvent.API
    return None


def _target(request, match) -> str:
    kwargs = match.kwargs
    if "study_id" in kwargs:
        return str(kwargs["study_id"])
    if "pk" in kwargs:
        return f"#{kwargs['pk']}"
    return request.META.get("QUERY_STRING", "")[:300]


class AccessAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method not in ("GET", "HEAD") or response.status_code >= 400:
            return response
        kind = _kind(getattr(request, "resolver_match", None))
        user = getattr(request, "user", None)  # DRF puts a token's user here too
        if kind is None or user is None or not user.is_authenticated:
            return response
        AccessEvent.objects.create(
            user=user,
            username=user.get_username(),
            kind=kind,
            view=request.resolver_match.view_name,
            target=_target(request, request.resolver_match),
            path=request.path[:500],
            status=response.status_code,
            address=client_address(request),
        )
        return response
