"""Plausibility limits per center, versioned like the rule parameters (CLINICAL.md section 2).

Versions are immutable: a change in the admin stores a new version and retires the previous one
(`patients.versioned.settings_publish`), so a confirmed value can always be traced to
the limits it was checked against. No center = the registry-wide default; no row at all = the
CLINICAL.md defaults (`patients.plausibility.Limits()`).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from patients.plausibility import Limits
from patients.versioned import CenterSettingsVersion

_DEFAULTS = Limits()


def _limit(label: str, default: Decimal, help_text: str = "") -> models.DecimalField:
    return models.DecimalField(
        label,
        max_digits=14,
        decimal_places=3,
        default=default,
        validators=[MinValueValidator(Decimal(0), "A limit cannot be negative.")],
        help_text=help_text,
    )


class PlausibilityLimits(CenterSettingsVersion):
    center = models.ForeignKey(
        "patients.Center",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="plausibility_limits",
    )
    bcell_abs_soft = _limit(
        _("PB B cells: confirm above (cells/µL)"), _DEFAULTS.bcell_abs_soft, _("Default 2,000.")
    )
    bcell_abs_hard = _limit(
        _("PB B cells: refuse above (cells/µL)"), _DEFAULTS.bcell_abs_hard, _("Default 100,000.")
    )
    alc_soft = _limit(
        _("ALC: confirm above (cells/µL)"), _DEFAULTS.alc_soft, _("Default 50,000 (50 ×10⁹/L).")
    )
    alc_hard = _limit(
        _("ALC: refuse above (cells/µL)"),
        _DEFAULTS.alc_hard,
        _("Default 1,000,000 (1,000 ×10⁹/L)."),
    )
    car_copies_soft = _limit(
        _("CAR copies: confirm above (copies/µg)"), _DEFAULTS.car_copies_soft, _("Default 10⁶.")
    )
    car_copies_hard = _limit(
        _("CAR copies: refuse above (copies/µg)"), _DEFAULTS.car_copies_hard, _("Default 10⁸.")
    )
    unit_slip_factor = models.DecimalField(
        _("unit-slip factor"),
        max_digits=10,
        decimal_places=3,
        default=_DEFAULTS.unit_slip_factor,
        validators=[MinValueValidator(Decimal(2), _("The factor must be at least 2."))],
        help_text=_(
            "Confirm a value at least this many times (or at most 1/this) the patient's "
            "previous non-zero value of the same analyte. Default 1,000."
        ),
    )

    DEFAULT = _DEFAULTS

    class Meta:
        ordering = ["center__code", "-version"]
        verbose_name_plural = "plausibility limits"
        constraints = [
            models.UniqueConstraint(
                fields=["center", "version"],
                name="plausibility_limits_version",
                nulls_distinct=False,
            ),
            models.UniqueConstraint(
                fields=["center"],
                condition=Q(is_current=True),
                name="one_current_plausibility_limits_per_center",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        for soft, hard in (
            ("bcell_abs_soft", "bcell_abs_hard"),
            ("alc_soft", "alc_hard"),
            ("car_copies_soft", "car_copies_hard"),
        ):
            low, high = getattr(self, soft), getattr(self, hard)
            if low is not None and high is not None and low > high:
                errors[soft] = [_("The confirm limit must not be above the refuse limit.")]
        if errors:
            raise ValidationError(errors)

    def to_value(self) -> Limits:
        return self.to_limits()

    def to_limits(self) -> Limits:
        return Limits(
            bcell_abs_soft=self.bcell_abs_soft,
            bcell_abs_hard=self.bcell_abs_hard,
            alc_soft=self.alc_soft,
            alc_hard=self.alc_hard,
            car_copies_soft=self.car_copies_soft,
            car_copies_hard=self.car_copies_hard,
            unit_slip_factor=self.unit_slip_factor,
            version=self.label,
        )
