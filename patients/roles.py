"""The two roles (Django groups) and their permissions: clinicians edit their center's data;
registry staff read every center. Used by deployments, the demo loader and the tests."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

CLINICAL_MODELS = [
    "patient",
    "infusion",
    "labresult",
    "responseassessment",
    "clinicalevent",
    "preemptivetherapy",
]


def _group(name: str, codenames: list[str]) -> Group:
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.set(Permission.objects.filter(codename__in=codenames))
    return group


def roles_ensure() -> dict[str, Group]:
    """The two roles: clinicians edit their center's data; registry staff read every center."""
    edit = [f"{a}_{m}" for a in ("add", "change", "delete", "view") for m in CLINICAL_MODELS]
    return {
        # add_refreshrun: "Refresh now" on the dashboard (registry staff only read).
        "clinician": _group("Clinicians", [*edit, "view_identifiers", "add_refreshrun"]),
        "registry": _group(
            "Registry staff", [f"view_{m}" for m in CLINICAL_MODELS] + ["view_all_centers"]
        ),
    }
