"""Writes an AccessEvent for every successful read of patient data (see audit.models)."""

from __future__ import annotations

import logging

from audit.models import AccessEvent
from carttrack.security import client_address

logger = logging.getLogger(__name__)

#: The kind of read of the views that are not about one patient's page.
KIND_BY_VIEW = {
    "monitoring:alert": AccessEvent.ALERT,
    "analytics:export_csv": AccessEvent.EXPORT,
    "analytics:export_alerts": AccessEvent.EXPORT,  # per alert, with study IDs
    "analytics:export_bcells": AccessEvent.EXPORT,  # per sample, with study IDs
}
#: URL namespaces whose every GET is an API read (the schema excepted).
API_NAMESPACES = {"api", "imports_api"}
#: URL keyword arguments that name a patient.
PATIENT_KWARGS = {"study_id", "patient", "patient_id"}
#: Apps whose models carry patients' data (identifiers, or rows naming a patient).
PATIENT_APPS = {"patients", "monitoring", "imports"}
#: Views of those apps whose "pk" is not a patient-bearing record (progress polling).
NOT_PATIENT_DATA = {"imports:status"}


def _kind(request, match) -> str | None:
    """The rule (not a list): a GET is a read of patient data when its URL names a patient
    (``PATIENT_KWARGS``) or a record of a patient-bearing app (``pk``, or an admin page of one
    of its models: change, history, delete, list), when it searches them (``q``), when it is
    an export or an alert, or when it is an API read."""
    if match is None:
        return None
    name = match.view_name
    if name in KIND_BY_VIEW:
        return KIND_BY_VIEW[name]
    if API_NAMESPACES & set(match.namespaces):
        return None if name == "api:schema" else AccessEvent.API
    if PATIENT_KWARGS & match.kwargs.keys():
        return AccessEvent.PATIENT
    namespace = match.namespaces[0] if match.namespaces else ""
    if namespace == "admin":
        app = match.url_name.split("_", 1)[0] if match.url_name else ""
        return AccessEvent.PATIENT if app in PATIENT_APPS else None
    if namespace in PATIENT_APPS and name not in NOT_PATIENT_DATA:
        if "pk" in match.kwargs or request.GET.get("q", "").strip():
            return AccessEvent.PATIENT
    return None


def _target(request, match) -> str:
    kwargs = match.kwargs
    if "study_id" in kwargs:
        return str(kwargs["study_id"])
    if "pk" in kwargs:
        return f"#{kwargs['pk']}"
    if "object_id" in kwargs:
        return f"{match.url_name.rsplit('_', 1)[0]}#{kwargs['object_id']}"[:300]
    return request.META.get("QUERY_STRING", "")[:300]


class AccessAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method not in ("GET", "HEAD") or response.status_code >= 400:
            return response
        kind = _kind(request, getattr(request, "resolver_match", None))
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
