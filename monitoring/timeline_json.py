"""A timeline from a JSON document, and findings back to JSON (the ``check_timeline`` format).

The format is documented in ``docs/timeline-format.md``. Bad input raises ValueError naming the
entry (``results[3] (id 4): ...``) and the field; nothing is half-loaded. Numbers are read as
Decimal, never through binary floats, and every value is converted to its analyte's canonical unit
with ``patients.units``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitoring.engine import evaluate, window_statuses
from monitoring.findings import Evidence, Finding
from monitoring.params import RuleParams, format_decimal
from monitoring.timeline import (
    DEATH,
    EVENT_KINDS,
    QUALIFIERS,
    RELAPSE,
    RESPONSES,
    EventPoint,
    InfusionPoint,
    ResponsePoint,
    ResultPoint,
    Timeline,
)
from patients.units import ANALYTES, UNIT_LABELS

_TOP_KEYS = {"patient", "birth_date", "time_zone", "infusions", "results", "responses", "events"}
_KEYS = {
    "infusions": ({"date"}, {"id", "number", "note"}),
    "results": ({"analyte", "collected"}, {"id", "specimen", "value", "unit", "qualifier", "note"}),
    "responses": ({"date", "response"}, {"id", "mrd_status", "note"}),
    "events": ({"kind", "date"}, {"id", "note"}),
}


def parse_json(text: str) -> Any:
    """JSON with every non-integer number as Decimal; a clear message on a syntax error."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to be a timeline") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not valid JSON: {name} is not a number")


def load_timeline(path: str | Path) -> Timeline:
    return timeline_from_json(parse_json(Path(path).read_text(encoding="utf-8")))


def load_params_file(path: str | Path) -> RuleParams:
    return params_from_json(parse_json(Path(path).read_text(encoding="utf-8")))


def params_from_json(doc: Any) -> RuleParams:
    return RuleParams.from_dict(doc)


def timeline_from_json(doc: Any) -> Timeline:
    """Build and check a Timeline from a parsed JSON document (see docs/timeline-format.md)."""
    if not isinstance(doc, Mapping):
        raise ValueError("the timeline must be a JSON object")
    _check_keys("the timeline", doc, set(), _TOP_KEYS)
    patient = doc.get("patient", "")
    if not isinstance(patient, str):
        raise ValueError("patient must be a string (the pseudonymous study ID)")
    birth_date = _date(doc["birth_date"], "birth_date") if doc.get("birth_date") else None
    zone = _zone(doc.get("time_zone"))
    entries = {section: _entries(doc, section) for section in _KEYS}

    infusions = _infusions(entries["infusions"])
    results = tuple(
        _result(where, entry, zone, index)
        for index, (where, entry) in enumerate(entries["results"], start=1)
    )
    responses = tuple(
        ResponsePoint(
            id=_id(where, entry, index),
            date=_date(entry["date"], f"{where}: date"),
            response=_choice(entry["response"], RESPONSES, f"{where}: response"),
            mrd_status=_string(entry.get("mrd_status", ""), f"{where}: mrd_status"),
        )
        for index, (where, entry) in enumerate(entries["responses"], start=1)
    )
    events = tuple(
        EventPoint(
            id=_id(where, entry, index),
            kind=_choice(entry["kind"], EVENT_KINDS, f"{where}: kind"),
            date=_date(entry["date"], f"{where}: date"),
        )
        for index, (where, entry) in enumerate(entries["events"], start=1)
    )
    labelled = {
        "infusions": list(zip([w for w, _ in entries["infusions"]], infusions, strict=True)),
        "results": list(zip([w for w, _ in entries["results"]], results, strict=True)),
        "responses": list(zip([w for w, _ in entries["responses"]], responses, strict=True)),
        "events": list(zip([w for w, _ in entries["events"]], events, strict=True)),
    }
    _check_document(labelled, birth_date)
    return Timeline(patient, birth_date, infusions, results, responses, events)


def _entries(doc: Mapping, section: str) -> list[tuple[str, Mapping]]:
    items = doc.get(section, [])
    if not isinstance(items, list):
        raise ValueError(f"{section} must be a list")
    required, optional = _KEYS[section]
    labelled = []
    for index, entry in enumerate(items):
        where = f"{section}[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be an object")
        if "id" in entry:
            where += f" (id {entry['id']})"
        _check_keys(where, entry, required, required | optional)
        labelled.append((where, entry))
    return labelled


def _check_keys(where: str, entry: Mapping, required: set[str], allowed: set[str]) -> None:
    missing = sorted(required - set(entry))
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _infusions(entries: list[tuple[str, Mapping]]) -> tuple[InfusionPoint, ...]:
    dated = [(where, entry, _date(entry["date"], f"{where}: date")) for where, entry in entries]
    # Without numbers, infusions are numbered in date order (a second CAR-T is infusion 2).
    by_date = sorted(range(len(dated)), key=lambda i: dated[i][2])
    default_number = {i: rank for rank, i in enumerate(by_date, start=1)}
    infusions = []
    for index, (where, entry, when) in enumerate(dated):
        number = entry.get("number", default_number[index])
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"{where}: number must be a whole number, at least 1")
        infusions.append(InfusionPoint(id=_id(where, entry, index + 1), date=when, number=number))
    ordered = sorted(zip([w for w, _, _ in dated], infusions, strict=True), key=lambda p: p[1].date)
    for (where_a, a), (where_b, b) in zip(ordered, ordered[1:], strict=False):
        if a.date == b.date:
            raise ValueError(f"{where_b}: another infusion ({where_a}) has the same date")
        if b.number <= a.number:
            raise ValueError(f"{where_b}: infusion numbers must increase with the infusion date")
    return tuple(infusions)


def _result(where: str, entry: Mapping, zone: ZoneInfo | None, position: int) -> ResultPoint:
    code = _choice(entry["analyte"], tuple(ANALYTES), f"{where}: analyte")
    analyte = ANALYTES[code]
    specimen = entry.get("specimen", analyte.specimen)
    if specimen != analyte.specimen:
        raise ValueError(
            f"{where}: {analyte.label} is measured in {analyte.specimen}, not {specimen}"
        )
    collected_on, collected_at = _collected(entry["collected"], zone, f"{where}: collected")
    qualifier = _choice(entry.get("qualifier", ""), QUALIFIERS, f"{where}: qualifier")
    raw_value = entry.get("value")
    if (raw_value is None) == (qualifier == ""):
        raise ValueError(f"{where}: give either a value (with its unit) or a qualifier")
    value = None
    if raw_value is not None:
        unit = entry.get("unit")
        if unit is None:
            raise ValueError(f"{where}: a value needs its unit (one of {', '.join(analyte.units)})")
        number = _number(raw_value, f"{where}: value")
        if number < 0:
            raise ValueError(f"{where}: value must not be negative")
        try:
            value = analyte.to_canonical(number, unit)
        except ValueError as error:
            raise ValueError(f"{where}: {error} (use one of {', '.join(analyte.units)})") from None
        if analyte.maximum is not None and value > analyte.maximum:
            label = UNIT_LABELS[analyte.canonical_unit]
            raise ValueError(f"{where}: value must not exceed {analyte.maximum} {label}")
    elif "unit" in entry and entry["unit"] not in analyte.units:
        raise ValueError(f"{where}: {entry['unit']!r} is not a unit of {analyte.label}")
    return ResultPoint(
        id=_id(where, entry, position),
        analyte=code,
        specimen=specimen,
        collected_on=collected_on,
        collected_at=collected_at,
        value=value,
        qualifier=qualifier,
    )


def _check_document(labelled: dict[str, list], birth_date: date | None) -> None:
    for items in labelled.values():
        seen: dict[int, str] = {}
        for where, item in items:
            if item.id in seen:
                raise ValueError(f"{where}: id {item.id} is also used by {seen[item.id]}")
            seen[item.id] = where
    when = {
        "infusions": lambda i: i.date,
        "results": lambda r: r.collected_on,
        "responses": lambda r: r.date,
        "events": lambda e: e.date,
    }
    if birth_date is not None:
        for section, items in labelled.items():
            for where, item in items:
                if when[section](item) < birth_date:
                    raise ValueError(f"{where}: date is before the birth date {birth_date}")
    first_infusion = min((i.date for _, i in labelled["infusions"]), default=None)
    deaths = [where for where, e in labelled["events"] if e.kind == DEATH]
    if len(deaths) > 1:
        raise ValueError(f"{deaths[1]}: a second death ({deaths[0]} is already one)")
    for where, event in labelled["events"]:
        if event.kind in (RELAPSE, DEATH) and first_infusion and event.date < first_infusion:
            raise ValueError(
                f"{where}: a {event.kind} before the first infusion ({first_infusion})"
            )
    samples: dict[tuple, str] = {}
    for where, r in labelled["results"]:
        key = (r.analyte, r.specimen, r.collected_on, r.collected_at)
        if key in samples:
            raise ValueError(
                f"{where}: duplicate of {samples[key]} (same analyte, specimen and collection time)"
            )
        samples[key] = where
    awareness = {
        r.collected_at.tzinfo is not None for _, r in labelled["results"] if r.collected_at
    }
    if len(awareness) > 1:
        raise ValueError(
            "results: collection times mix ones with and without a UTC offset; give all of them "
            "an offset, or none, or set time_zone"
        )


def _id(where: str, entry: Mapping, position: int) -> int:
    # Without an id an entry is named by its position in its list, counting from 1.
    value = entry.get("id", position)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: id must be a whole number, at least 1")
    return value


# Clinical dates lie in this range; outside it date arithmetic (and UTC offsets) can overflow.
FIRST_YEAR, LAST_YEAR = 1900, 2200


def _in_range(year: int, where: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"{where}: the year {year} is outside {FIRST_YEAR}–{LAST_YEAR}")


def _date(value: Any, where: str) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where} must be a date YYYY-MM-DD, not {_short(value)}") from None
    _in_range(parsed.year, where)
    return parsed


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _collected(value: Any, zone: ZoneInfo | None, where: str) -> tuple[date, datetime | None]:
    """A date, or a date-time whose calendar date is taken in the center's time zone if given."""
    try:
        if not isinstance(value, str):
            raise ValueError
        if len(value) == 10:
            day = date.fromisoformat(value)
            _in_range(day.year, where)
            return day, None
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(
            f"{where} must be a date YYYY-MM-DD or a date-time YYYY-MM-DDTHH:MM[:SS][+HH:MM], "
            f"not {_short(value)}"
        ) from None
    _in_range(moment.year, where)
    if zone is not None:
        moment = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    return moment.date(), moment


def _zone(name: Any) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        if not isinstance(name, str):
            raise ValueError
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(
            f"time_zone must be an IANA name like Europe/Berlin, not {name!r}"
        ) from None


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{where} must be a number, not {value!r}")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where} must be a number, not {_short(value)}") from None
    if not number.is_finite():
        raise ValueError(f"{where} must be a finite number, not {_short(value)}")
    if number == 0:
        return Decimal(0)
    # A lab value has at most 15 digits before the point and needs no more than 12 after it;
    # "1E+999999" is a typing error, not a count.
    if not -12 <= number.adjusted() <= 14:
        raise ValueError(f"{where} is out of range for a lab value: {_short(value)}")
    return number


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{where} must be one of {shown}, not {value!r}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


# Findings back to JSON ---------------------------------------------------------------------


def evidence_to_dict(evidence: Evidence) -> dict[str, Any]:
    return {
        "result_id": evidence.result_id,
        "role": evidence.role,
        "analyte": evidence.analyte,
        "specimen": evidence.specimen,
        "day": evidence.day,
        "date": evidence.date.isoformat(),
        # Plain notation without padding zeros (a stored 15.000000 reads 15), never a float.
        "value": None if evidence.value is None else format_decimal(evidence.value),
        "unit": evidence.unit,
        "qualifier": evidence.qualifier,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "infusion_id": finding.infusion_id,
        "day": finding.day,
        "severity": finding.severity,
        "title": finding.title,
        "evidence": [evidence_to_dict(e) for e in finding.evidence],
        "details": finding.details,
    }


def findings_to_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [finding_to_dict(f) for f in findings]


def evaluation_report(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> dict[str, Any]:
    """Everything ``check_timeline`` prints: the findings and the basis they were evaluated on."""
    known = timeline.until(as_of)
    horizon = as_of or known.last_known_date()
    return {
        "patient": timeline.patient_ref,
        "as_of": as_of.isoformat() if as_of else None,
        "evaluated_through": horizon.isoformat() if horizon else None,
        "params": params.to_dict(),
        "definition": params.definition_text(),
        "windows": [
            {
                "infusion_id": s.infusion_id,
                "infusion_number": s.infusion_number,
                "eligible": s.eligible,
                "reason": s.reason,
                "monitored_until": s.monitored_until.isoformat() if s.monitored_until else None,
                "ended_by": s.ended_by,
            }
            for s in window_statuses(timeline, as_of=as_of)
        ],
        "findings": findings_to_json(evaluate(timeline, params, as_of=as_of)),
    }
