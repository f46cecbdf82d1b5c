"""Per-center settings that are versioned: the rule parameters and the plausibility limits.

One abstract base for both (`CenterSettingsVersion`), one publish path and one resolver, so "the
settings in force for center X at time T" is decided once. Versions are immutable: publishing
stores a new version and retires the previous one, so every alert and every confirmed value can
name exactly the values it was judged by. No center = the registry-wide version; no row at all =
the defaults (CLINICAL.md).

A subclass declares its own ``center`` foreign key (with its related name and constraints) and
``to_value()``, the plain value object the pure code reads; ``DEFAULT`` is that object's default.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction


class CenterSettingsVersion(models.Model):
    version = models.PositiveIntegerField(editable=False)
    is_current = models.BooleanField(default=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True, help_text="Why this change was made.")

    DEFAULT: ClassVar[Any] = None

    class Meta:
        abstract = True

    @property
    def label(self) -> str:
        return f"{self.center.code if self.center_id else 'registry'}-v{self.version}"

    def to_value(self) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def check_value(self) -> None:
        """Raise ValidationError if the stored values do not make a valid value object."""


def settings_publish(
    model: type[CenterSettingsVersion], *, center, user, values: dict, note: str = ""
) -> CenterSettingsVersion:
    """Store a new version of a center's settings (no center: registry-wide) and retire the
    previous one, in one transaction; the caller's outer transaction, if any, includes it."""
    with transaction.atomic():
        last = model.objects.select_for_update().filter(center=center).order_by("-version").first()
        model.objects.filter(center=center, is_current=True).update(is_current=False)
        saved = model(
            center=center,
            version=(last.version + 1) if last else 1,
            is_current=True,
            created_by=user if user is not None and user.is_authenticated else None,
            note=note,
            **values,
        )
        saved.full_clean()
        saved.check_value()
        saved.save()
    return saved


def settings_in_force(
    model: type[CenterSettingsVersion],
    center_ids: Iterable[int | None],
    *,
    at: datetime | None = None,
) -> dict[int | None, Any]:
    """The settings in force for each center: its own version, else the registry-wide one, else
    the defaults; ``at`` None: the current versions; else the versions published by then.

    One query for any number of centers (versions are few; the newest per center wins).
    """
    wanted = set(center_ids)
    qs = model.objects.filter(
        models.Q(center_id__in=[c for c in wanted if c]) | models.Q(center=None)
    )
    qs = qs.filter(is_current=True) if at is None else qs.filter(created_at__lte=at)
    newest: dict[int | None, CenterSettingsVersion] = {}
    for found in qs.select_related("center").order_by("version"):
        newest[found.center_id] = found  # ascending versions: the last one seen wins
    fallback = newest[None].to_value() if None in newest else model.DEFAULT
    return {c: newest[c].to_value() if c in newest else fallback for c in wanted | {None}}


def setting_in_force(model: type[CenterSettingsVersion], center, *, at: datetime | None = None):
    """`settings_in_force` for one center (a Center, or None for the registry-wide settings)."""
    center_id = getattr(center, "pk", center)
    return settings_in_force(model, [center_id], at=at)[center_id]
