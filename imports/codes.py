"""What a feed's result code and unit mean: a center's code map, then the shipped LOINC entries;
UCUM units parsed (ucumvert, on pint) and compared by their quantity, then a center's aliases.

Shared by the HL7 v2 feed and the retry of held results (`imports.held`): a code or unit that
cannot be read here is never guessed, the result is held until someone maps it.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

from carttrack.shared_reads import read_shared
from imports.fhir_codes import ANALYTE_SYSTEM, mapping
from patients import units
from patients.models import Center

LOINC = "http://loinc.org"
# HL7 v2 coding-system names (table 0396) for the systems of the shipped mapping.
HL7_SYSTEMS = {"LN": LOINC, "LOINC": LOINC}


def system_normalize(system: str) -> str:
    return HL7_SYSTEMS.get(system.strip().upper(), system.strip())


def code_analyte(*, center: Center, system: str, code: str) -> str | None:
    """The analyte `code` (in `system`, as sent) names at `center`, or None (not monitored, or
    not mapped yet). The center's own map first (a mapping with no system matches any), then the
    shipped LOINC entries (imports/fhir_mapping.json and FHIR_LOCAL_MAPPING_FILE)."""
    from imports.models import CodeMapping

    code = code.strip()
    if not code:
        return None
    own = read_shared(
        ("code map", center.pk, code, system),
        lambda: {
            m.system: m.analyte
            for m in CodeMapping.objects.filter(center=center, code=code, system__in=[system, ""])
        },
    )
    if system in own:
        return own[system]
    if "" in own:
        return own[""]
    if system == ANALYTE_SYSTEM and code in units.ANALYTES:  # the product's own codes
        return code
    wanted = system_normalize(system)
    for entry in mapping()["codes"]:
        if entry["code"] == code and entry["system"] == wanted:
            return entry["analyte"]
    return None


@cache
def _registry():  # also warmed by the MLLP listener at start
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


@lru_cache(maxsize=1024)
def ucum_unit(analyte: str, text: str) -> str | None:
    """The product unit (patients.units) of a UCUM unit string for `analyte`, by its quantity:
    `/uL`, `{cells}/uL`, `/mm3` are cells/µL; `10*3/uL`, `10*9/L`, `10*3/mm3`, `/nL` are
    ×10⁹/L; `%` is the analyte's percentage; `1` a fraction; `{copies}/ug` copies/µg.

    Cached (a pure function of its arguments: the UCUM grammar and the product's units do not
    change while the process runs); parsing a unit took about 20 ms, a feed sends the same few."""
    definition = units.ANALYTES[analyte]
    try:
        quantity = 1 * _registry().from_ucum(text.strip())
    except Exception:  # ucumvert raises its own and pint's errors for what is not UCUM
        return None
    canonical = definition.canonical_unit
    try:
        if canonical == units.CELLS_PER_UL:
            factor = quantity.to("1/uL").magnitude
            if _close(factor, 1):
                return units.CELLS_PER_UL
            if _close(factor, 1000):
                return units.GIGA_PER_L
            return None
        if canonical in (units.PERCENT_LYMPHOCYTES, units.PERCENT_CELLS):
            return canonical if _close(quantity.to("dimensionless").magnitude, 0.01) else None
        if canonical == units.FRACTION:
            return canonical if _close(quantity.to("dimensionless").magnitude, 1) else None
        if canonical == units.COPIES_PER_UG:
            return canonical if _close(quantity.to("1/ug").magnitude, 1) else None
    except Exception:  # another dimension (g/dL for a count)
        return None
    return None


def unit_resolve(*, center: Center, analyte: str, text: str) -> str | None:
    """The product unit `text` (as sent) means for `analyte` at `center`, or None: the center's
    alias first (a laboratory's own spelling, "G/l"), then the product's own unit codes, then
    UCUM."""
    from imports.models import UnitAlias

    text = text.strip()
    allowed = units.ANALYTES[analyte].units
    alias = read_shared(
        ("unit alias", center.pk, text.lower()),
        lambda: UnitAlias.objects.filter(center=center, text__iexact=text).first(),
    )
    if alias is not None:
        return alias.unit if alias.unit in allowed else None
    if text in allowed:
        return text
    if not text:
        return None
    unit = ucum_unit(analyte, text)
    return unit if unit in allowed else None
