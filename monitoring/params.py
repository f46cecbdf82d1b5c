"""The parameters the rules are evaluated with (CLINICAL.md section 4, defaults in brackets there).

A center can change any of them; every finding records the version label and the values it used, so
a parameter set that changes a value must carry a label of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_VERSION = "default-1"

_DECIMAL_FIELDS = ("bcell_threshold", "mrd_flow_threshold_pct", "mrd_ngs_threshold")
_OPTIONAL_DECIMAL_FIELDS = ("bcell_pct_threshold",)
#: The longest window or day limit a parameter set may name (days after infusion).
MAX_DAYS = 3650

_DAY_FIELDS = ("window_days", "aplasia_by_day", "count_due_days")


def format_decimal(value: Decimal) -> str:
    """A Decimal in plain notation without trailing zeros: 0.0001, 100, 1.5."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _as_decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        # A float goes through its shortest repr, i.e. the number as a person typed it.
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return number


@dataclass(frozen=True)
class RuleParams:
    version: str = DEFAULT_VERSION
    # Early regeneration: detectable PB B cells on day 1..window_days after aplasia.
    window_days: int = 45
    # "Detectable" means strictly above this count (cells/µL); the study counted any B cell (> 0).
    bcell_threshold: Decimal = Decimal(0)
    # Optionally also detectable when the % of lymphocytes is above this (tisagenlecleucel: 1 %).
    bcell_pct_threshold: Decimal | None = None
    # Whether a second consecutive detectable sample must confirm the first.
    require_confirmation: bool = False
    aplasia_by_day: int = 28
    count_due_days: int = 7
    mrd_flow_threshold_pct: Decimal = Decimal("0.01")
    mrd_ngs_threshold: Decimal = Decimal("0.0001")

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise ValueError("version must be a non-empty label")
        if len(self.version) > 50:
            raise ValueError("version must be at most 50 characters")
        for name in _DAY_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of days, at least 1")
            if value > MAX_DAYS:  # the preview's sweep and the saved set alike
                raise ValueError(f"{name} must be at most {MAX_DAYS} days (10 years)")
        if not isinstance(self.require_confirmation, bool):
            raise ValueError("require_confirmation must be true or false")
        for name in _DECIMAL_FIELDS + _OPTIONAL_DECIMAL_FIELDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_DECIMAL_FIELDS:
                continue
            number = _as_decimal(name, value)
            if number < 0:
                raise ValueError(f"{name} must not be negative")
            object.__setattr__(self, name, number)
        if self.bcell_pct_threshold is not None and self.bcell_pct_threshold > 100:
            raise ValueError("bcell_pct_threshold is a percentage and must not exceed 100")
        if self.mrd_flow_threshold_pct > 100:
            raise ValueError("mrd_flow_threshold_pct is a percentage and must not exceed 100")
        if self.mrd_ngs_threshold > 1:
            raise ValueError("mrd_ngs_threshold is a fraction and must not exceed 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings, so no value is rounded on the way to storage."""
        data = asdict(self)
        for name in _DECIMAL_FIELDS + _OPTIONAL_DECIMAL_FIELDS:
            if data[name] is not None:
                data[name] = format_decimal(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleParams:
        """Parameters from a dict such as ``to_dict`` gives; missing keys take the defaults."""
        if not isinstance(data, Mapping):
            raise ValueError("rule parameters must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown rule parameter(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        params = cls(**dict(data))
        default = cls()
        if params.version == DEFAULT_VERSION and params != default:
            # Otherwise alerts evaluated with different values would claim the same parameter set.
            raise ValueError(
                "these parameters differ from the defaults: give them their own version label"
            )
        return params

    def definition_text(self) -> str:
        """The definition of "detectable PB B cells" in words, as stored with every B-cell alert
        (English); `definition_words` gives it in the active language."""
        from django.utils.translation import override

        with override(None):
            return definition_words(self.bcell_definition())

    def bcell_definition(self) -> dict[str, Any]:
        """The parameters of the "detectable" definition, JSON-safe, for a finding's details."""
        data = self.to_dict()
        return {
            "version": data["version"],
            "bcell_threshold": data["bcell_threshold"],
            "bcell_pct_threshold": data["bcell_pct_threshold"],
            "require_confirmation": data["require_confirmation"],
        }


DEFAULTS = RuleParams()


def definition_words(parameters: Mapping[str, Any]) -> str:
    """The definition of "detectable PB B cells" in the active language, from the parameters a
    finding stored (`RuleParams.bcell_definition`); numbers and units stay as they are."""
    from django.utils.translation import gettext

    threshold, pct = parameters.get("bcell_threshold"), parameters.get("bcell_pct_threshold")
    if pct is None:
        text = gettext("PB B cells count as detectable above %(threshold)s cells/µL") % {
            "threshold": threshold
        }
    else:
        text = gettext(
            "PB B cells count as detectable above %(threshold)s cells/µL or above %(pct)s %% of "
            "lymphocytes"
        ) % {"threshold": threshold, "pct": pct}
    if parameters.get("require_confirmation"):
        rest = gettext(
            "a second consecutive detectable sample must confirm, and the regeneration day is "
            "that of the first of the two"
        )
    else:
        rest = gettext("one detectable sample suffices")
    return gettext("%(definition)s; %(confirmation)s (parameters %(version)s).") % {
        "definition": text,
        "confirmation": rest,
        "version": parameters.get("version", ""),
    }
