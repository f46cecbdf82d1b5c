"""Plausibility (CLINICAL.md section 2) read against what is stored: the center's limits, the
other results of the same sample, each analyte's previous value, and the findings as validation
errors (hard ones refuse, soft ones refuse until a person confirms). The check itself is the pure
`patients.plausibility.check_sample`; the forms, the admin and the API reach it through
`sample_plausibility` with one patient's facts (`patients.facts`), an import through
`sample_findings` with facts loaded once per batch. Nothing here reads the stored results.
What a result keeps of its findings (refused, or kept as confirmed with the warning and who
confirmed) is decided once, in `confirmation_apply`, for every door.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from patients import units
from patients.plausibility import Limits, PlausibilityFinding, check_sample, check_sample_date
from patients.validation import PatientFacts, today_in

Errors = dict[str, list]

# The code of a soft plausibility refusal: the same values pass once a person confirms them.
UNCONFIRMED = "plausibility_unconfirmed"
IMPLAUSIBLE = "plausibility_impossible"
CONFIRM_IT = _("If it is correct, confirm it.")


def plausibility_limits_for(center, *, at=None) -> Limits:
    """The center's plausibility limits in force (`at` None: the current version), else the
    registry-wide ones, else the defaults (`patients.versioned.settings_in_force`)."""
    from patients.limits import PlausibilityLimits
    from patients.versioned import setting_in_force

    return setting_in_force(PlausibilityLimits, center, at=at)


def sample_plausibility(
    *,
    collected_at: datetime | None,
    values: dict[str, Decimal | None],
    facts: PatientFacts,
) -> list[PlausibilityFinding]:
    """Findings for new or changed values of one sample (canonical units), read against the
    center's limits, the other results stored for the same collection time and the patient's
    previous non-zero value of each analyte, all from `facts` (`patients.facts.facts_for` with
    `labs`, without the result being changed). See patients.plausibility."""
    limits = facts.limits or Limits()
    if collected_at is None:
        return check_sample(values, limits)
    siblings = {
        analyte: value
        for analyte, when, value in facts.lab_values
        if when == collected_at and analyte not in values
    }
    previous: dict[str, tuple[datetime, Decimal]] = {}
    for analyte, when, value in facts.lab_values:
        if analyte in values and when < collected_at and value is not None and value > 0:
            if analyte not in previous or when > previous[analyte][0]:
                previous[analyte] = (when, value)
    return sample_findings(
        values,
        siblings=siblings,
        previous={analyte: value for analyte, (_when, value) in previous.items()},
        limits=limits,
    )


def sample_findings(
    values: dict[str, Decimal | None],
    *,
    siblings: dict[str, Decimal | None],
    previous: dict[str, Decimal],
    limits: Limits,
) -> list[PlausibilityFinding]:
    """The findings for a sample's new values, given what is stored for the same collection time
    (`siblings`), each analyte's previous non-zero value and the center's limits: no database,
    so an import checks a whole batch from facts it loaded once."""
    others = {a: v for a, v in siblings.items() if a not in values}
    findings = check_sample({**others, **values}, limits, previous)
    # A B-cell count above a stored ALC of the same sample is the new ALC's finding.
    return [
        f if f.analyte in values else dataclasses.replace(f, analyte=units.ALC)
        for f in findings
        if f.analyte in values or units.ALC in values
    ]


def sample_date_findings(*, patient, on, facts: PatientFacts) -> list[PlausibilityFinding]:
    """The collection date `on` (the center's local date) read against the patient's infusions,
    its samples already recorded (`facts`, with `dates` and `labs`) and the center's today
    (`patients.plausibility.check_sample_date`)."""
    if patient is None or patient.center_id is None or on is None:
        return []
    tz = patient.center.tzinfo
    samples = {when.astimezone(tz).date() for _analyte, when, _value in facts.lab_values}
    return check_sample_date(
        on,
        infusion_dates=list(facts.infusion_dates),
        sample_dates=sorted(samples),
        today=today_in(tz),
    )


def plausibility_errors(
    findings: list[PlausibilityFinding], *, confirmed: bool, field: str = "value"
) -> Errors:
    """Hard findings always refuse; soft ones refuse until the value is confirmed."""
    errors: Errors = {}
    for finding in findings:
        if finding.is_hard:
            errors.setdefault(field, []).append(ValidationError(finding.message, code=IMPLAUSIBLE))
        elif not confirmed:
            errors.setdefault(field, []).append(
                ValidationError(
                    "%(finding)s %(confirm)s",
                    code=UNCONFIRMED,
                    params={"finding": finding.message, "confirm": CONFIRM_IT},
                )
            )
    return errors


def confirmation_apply(
    result, findings: list[PlausibilityFinding], *, confirmed: bool, user=None
) -> list[ValidationError]:
    """CLINICAL.md section 2's decision for one result, whichever door it came through: a hard
    finding refuses; a soft one refuses until the value is `confirmed`. A value kept despite
    soft findings records the warning that was confirmed and who confirmed (`confirmer_set`); a
    value without one is never marked confirmed (a confirmation is for the value it was given
    for). Returns the refusals (the result's "value" errors); none: the result may be saved."""
    refusals = plausibility_errors(findings, confirmed=confirmed).get("value", [])
    soft = [f.message for f in findings if not f.is_hard]
    result.plausibility_confirmed = bool(soft) and confirmed
    result.plausibility_warning = " ".join(soft)[:1000] if result.plausibility_confirmed else ""
    confirmer_set(result, user)
    return refusals


def confirmer_set(result, user) -> None:
    """Who confirmed an unusual value: the signed-in person saving it confirmed; nobody for a
    value that is not. A model's `clean()` does not know who saves: the saving service calls
    this again with its user (`patients.services.clinical_record_save`)."""
    signed_in = user is not None and user.is_authenticated
    result.plausibility_confirmed_by = user if result.plausibility_confirmed and signed_in else None
