"""Held results: a result a feed sent that could not be placed, kept until it can be.

`held_result_record` keeps one result as sent (any feed: "hl7", "fhir", "lab-api"), with why it
could not be placed. `held_results_retry` imports every held result that can now be placed
(its patient registered, its code or unit mapped) through the one import path
(`imports.services.records_import`: the same checks, audit, history and alerts as any other
result); it runs after a patient, a code mapping or a unit alias is saved (imports.signals) and
from the queue's *Retry* button. `held_result_dismiss` takes it out of the queue, with a reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext, ngettext

from imports.codes import code_analyte, unit_resolve
from imports.fhir_codes import ANALYTE_SYSTEM
from imports.models import (
    HELD,
    HELD_DISMISSED,
    HELD_IMPORTED,
    REFUSED_BY_CHECKS,
    UNKNOWN_PATIENT,
    UNMAPPED_CODE,
    UNMAPPED_UNIT,
    UNREADABLE,
    HeldResult,
)
from imports.problems import Coded, stored
from patients import units
from patients.ingest.context import Scope
from patients.ingest.records import Batch, LabValueRecord, SampleRecord
from patients.models import Center, Patient
from patients.numbers import NumberFormatError, parse_decimal

FEED_ACCOUNT_PREFIX = "feed-"


def feed_account(source: str):
    """The account a feed's results are entered as (audit history, `entered_by`): one inactive
    user per feed kind, made on first use, that cannot sign in."""
    user, created = get_user_model().objects.get_or_create(
        username=f"{FEED_ACCOUNT_PREFIX}{source}"[:150],
        defaults={"is_active": False, "first_name": f"{source} feed"},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def feed_scope(*, center: Center, user) -> Scope:
    """A feed enters results for its center's patients; it never creates a patient."""
    return Scope(
        user=user,
        patients=Patient.objects.filter(center=center),
        centers={center.code: center},
        default_center=center,
        may_add_patients=False,
    )


def held_result_record(
    *,
    center: Center,
    source: str,
    sender: str,
    reason: str,
    reason_text: str,
    identifier: str,
    code: str,
    value: str,
    unit: str,
    collected_at_text: str,
    raw: str | dict | list,
    identifier_kind: str = "study_id",
    code_system: str = "",
    code_display: str = "",
    hl7_message=None,
) -> HeldResult:
    """Keep one result that could not be placed in `center`'s queue, as sent. `raw` is the
    result's own text (an OBX with its PID/OBR) or JSON (a FHIR Observation, an API value)."""
    held = HeldResult(
        center=center,
        source=source,
        sender=sender[:200],
        reason=reason,
        reason_text=reason_text,
        reason_detail=stored(reason_text),
        identifier=(identifier or "")[:200],
        identifier_kind=identifier_kind,
        code_system=(code_system or "")[:200],
        code=(code or "")[:200],
        code_display=(code_display or "")[:200],
        value=str(value if value is not None else "")[:100],
        unit=(unit or "")[:100],
        collected_at_text=(collected_at_text or "")[:100],
        raw=raw if isinstance(raw, str) else json.dumps(raw, default=str, ensure_ascii=False),
        hl7_message=hl7_message,
    )
    held.full_clean(exclude=["hl7_message", "imported_result", "dismissed_by"])
    held.save()
    return held


_HL7_TS = re.compile(
    r"^(?P<y>\d{4})(?P<m>\d{2})?(?P<d>\d{2})?(?P<H>\d{2})?(?P<M>\d{2})?(?P<S>\d{2})?"
    r"(?:\.\d{1,4})?(?P<tz>[+-]\d{4})?$"
)


def sent_time(text: str) -> datetime | None:
    """A collection time as a feed sends it: HL7 v2 TS/DTM (`YYYYMMDDHHMM[SS[.S]][+ZZZZ]`) or
    ISO 8601. Without an offset it stays naive: the import reads it in the center's zone. None
    if it cannot be read."""
    text = (text or "").strip()
    match = _HL7_TS.match(text)
    if match:
        parts = match.groupdict()
        if parts["d"] is None:
            return None  # a month is not a collection time
        try:
            moment = datetime(
                int(parts["y"]),
                int(parts["m"]),
                int(parts["d"]),
                int(parts["H"] or 0),
                int(parts["M"] or 0),
                int(parts["S"] or 0),
            )
        except ValueError:
            return None
        if parts["tz"]:
            sign = 1 if parts["tz"][0] == "+" else -1
            offset = timedelta(hours=int(parts["tz"][1:3]), minutes=int(parts["tz"][3:5]))
            moment = moment.replace(tzinfo=timezone(sign * offset))
        return moment
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def sent_value(text: str) -> tuple[object, str]:
    """(Decimal value, "") or (None, qualifier) for "<0.01"-style values; raises
    NumberFormatError with a message otherwise."""
    text = (text or "").strip()
    if text.startswith("<"):
        return None, units.BELOW_LOD
    if text in (units.UNDETECTABLE, units.BELOW_LOD):  # a qualifier, as the lab API sends it
        return None, text
    return parse_decimal(text), ""


@dataclass
class Placement:
    """Where a held result goes, or why it still cannot go anywhere."""

    patient: Patient | None = None
    analyte: str = ""
    unit: str = ""
    value: object = None
    qualifier: str = ""
    collected_at: datetime | None = None
    reason: str = ""
    # English (what an HL7 ERR segment says), a problems.Coded keeping its code and parameters
    # for the queue page, which shows it in the reader's language.
    reason_text: str = ""


def result_place(
    *,
    center: Center,
    identifier: str,
    identifier_kind: str,
    code_system: str,
    code: str,
    value: str,
    unit: str,
    collected_at_text: str,
    analyte: str | None = None,
) -> Placement:
    """Find a sent result's patient (by study ID or MRN, within the center), analyte, unit,
    value and time, or say why it cannot be placed. `analyte`: what the code names, when the
    caller has looked it up already (`code_analyte`), so the code map is not read twice."""
    out = Placement()
    patients = Patient.objects.filter(center=center)
    if identifier_kind == "mrn":
        found = list(patients.filter(mrn=identifier)[:2]) if identifier else []
    else:
        found = list(patients.filter(study_id__iexact=identifier)[:2]) if identifier else []
    if len(found) != 1:
        out.reason = UNKNOWN_PATIENT
        out.reason_text = Coded(
            "held_unknown_patient" if not found else "held_two_patients",
            what={"word": "mrn" if identifier_kind == "mrn" else "study_id"},
            identifier=repr(identifier),
            center=center.name,
        )
        return out
    out.patient = found[0]
    if analyte is None:
        analyte = code_analyte(center=center, system=code_system, code=code)
    out.analyte = analyte or ""
    if not out.analyte:
        out.reason = UNMAPPED_CODE
        out.reason_text = Coded(
            "held_unmapped_code",
            code=f"{code_system + '|' if code_system else ''}{code}",
            center=center.name,
        )
        return out
    try:
        out.value, out.qualifier = sent_value(value)
    except NumberFormatError as error:
        out.reason = UNREADABLE
        out.reason_text = Coded("held_unreadable_value", value=repr(value), error=str(error))
        return out
    if out.qualifier:
        out.unit = units.ANALYTES[out.analyte].canonical_unit
    else:
        out.unit = unit_resolve(center=center, analyte=out.analyte, text=unit) or ""
    if not out.unit:
        out.reason = UNMAPPED_UNIT
        out.reason_text = Coded(
            "held_unmapped_unit",
            unit=repr(unit),
            analyte={"analyte": out.analyte},
            center=center.name,
        )
        return out
    out.collected_at = sent_time(collected_at_text)
    if out.collected_at is None:
        out.reason = UNREADABLE
        out.reason_text = Coded("held_unreadable_time", time=repr(collected_at_text))
    return out


def retry_message(imported: int, still: int) -> str:
    """What a person who pressed retry is told."""
    return ngettext(
        "%(imported)s imported, %(still)s still held.",
        "%(imported)s imported, %(still)s still held.",
        still,
    ) % {"imported": imported, "still": still}


@dataclass
class RetryOutcome:
    imported: int = 0
    still_held: int = 0


def held_results_retry(*, center: Center | None = None, user=None) -> RetryOutcome:
    """Import every held result (of `center`, or all) that can now be placed, each through
    `records_import` in its own transaction (one still unplaceable never blocks another). A
    result the import's checks refuse (a duplicate, a hard plausibility limit) stays held with
    the checks' words. `user` is who pressed *Retry* (else the feed's account)."""
    from imports.services import records_import

    outcome = RetryOutcome()
    queue = HeldResult.objects.filter(state=HELD).select_related("center")
    if center is not None:
        queue = queue.filter(center=center)
    for pk in list(queue.values_list("pk", flat=True)):
        with transaction.atomic():
            held = (
                HeldResult.objects.select_for_update(skip_locked=True)
                .select_related("center")
                .filter(pk=pk, state=HELD)
                .first()
            )
            if held is None:
                continue  # another retry has it
            place = result_place(
                center=held.center,
                identifier=held.identifier,
                identifier_kind=held.identifier_kind,
                code_system=held.code_system,
                code=held.code,
                value=held.value,
                unit=held.unit,
                collected_at_text=held.collected_at_text,
            )
            held.retried_at = dj_timezone.now()
            if place.reason:
                held.reason, held.reason_text = place.reason, place.reason_text
                held.reason_detail = stored(place.reason_text)
                held.save(update_fields=["reason", "reason_text", "reason_detail", "retried_at"])
                outcome.still_held += 1
                continue
            account = user or feed_account(held.source)
            sample = SampleRecord(
                place=f"held result {held.pk}",
                study_id=place.patient.study_id,
                collected_at=place.collected_at,
                values=[
                    LabValueRecord(
                        place=f"held result {held.pk}",
                        analyte=place.analyte,
                        value=place.value,
                        unit=place.unit,
                        qualifier=place.qualifier,
                    )
                ],
            )
            result = records_import(
                batch=Batch(samples=[sample]),
                scope=feed_scope(center=held.center, user=account),
            )
            if not result.ok:
                held.reason = REFUSED_BY_CHECKS
                # the checks' messages, as written in the retry's language (a feed's: English)
                held.reason_text = " ".join(p.message for p in result.problems)
                held.reason_detail = {}
                held.save(update_fields=["reason", "reason_text", "reason_detail", "retried_at"])
                outcome.still_held += 1
                continue
            held.state = HELD_IMPORTED
            held.resolved_at = held.retried_at
            held.imported_result_id = result.lab_result_ids[0]
            held.save(update_fields=["state", "resolved_at", "imported_result", "retried_at"])
            outcome.imported += 1
    return outcome


def held_result_dismiss(*, held: HeldResult, user, reason: str) -> HeldResult:
    """Take a held result out of the queue without importing it; a reason is required."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": gettext("Say why the result is dismissed.")})
    with transaction.atomic():
        held = HeldResult.objects.select_for_update().get(pk=held.pk)
        if held.state != HELD:
            raise ValidationError(
                {
                    "reason": gettext("This result is already %(state)s.")
                    % {"state": str(held.get_state_display()).lower()}
                }
            )
        held.state = HELD_DISMISSED
        held.dismissed_by = user
        held.dismissal_reason = reason
        held.resolved_at = dj_timezone.now()
        held.save(update_fields=["state", "dismissed_by", "dismissal_reason", "resolved_at"])
    return held


def lab_api_unplaced_hold(*, user, samples: list[tuple[int, dict]]) -> list[dict]:
    """Keep the values of lab API samples whose patient is unknown in the sender's center's
    queue (the API still refuses the batch, and says which values are held). The same value
    sent again is not held twice. Returns [{"place", "held_result"}]."""
    profile = getattr(user, "profile", None)
    center = profile.center if profile is not None else None
    if center is None:
        return []
    out = []
    sender = f"{user.get_username()} (lab API)"
    with transaction.atomic():
        for i, sample in samples:
            for j, value in enumerate(sample.get("values") or []):
                if not isinstance(value, dict):
                    continue
                text = value.get("value")
                text = value.get("qualifier") or "" if text in (None, "") else str(text)
                given = {
                    "identifier": str(sample.get("study_id", "")),
                    "code": str(value.get("analyte", "")),
                    "value": text,
                    "unit": str(value.get("unit", "")),
                    "collected_at_text": str(sample.get("collected_at", "")),
                }
                held = HeldResult.objects.filter(
                    center=center, source="lab-api", sender=sender, state=HELD, **given
                ).first() or held_result_record(
                    center=center,
                    source="lab-api",
                    sender=sender,
                    reason=UNKNOWN_PATIENT,
                    reason_text=Coded(
                        "held_unknown_patient",
                        what={"word": "study_id"},
                        identifier=repr(given["identifier"]),
                        center=center.name,
                    ),
                    code_system=ANALYTE_SYSTEM,
                    raw={
                        "study_id": given["identifier"],
                        "collected_at": given["collected_at_text"],
                        **value,
                    },
                    **given,
                )
                out.append({"place": f"samples[{i}].values[{j}]", "held_result": held.pk})
    return out
