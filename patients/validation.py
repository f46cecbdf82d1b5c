"""Validation that needs more than one field or other rows (CLINICAL.md section 2).

Each function returns {field: [message, ...]} so that every form, the admin and the API show the
same clear, field-level message. Models call these from `clean()`; services call `full_clean()`
before saving, so nothing half-valid reaches the database. The checks are pure: what they compare
a record with is the patient's `PatientFacts`, loaded once by the caller with the queries of
`patients.facts` (`facts_for` for one patient's record, `patients.ingest.context` for a whole
batch), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from patients import identifiers, units
from patients.vocabulary import AGENT_CATEGORY, DEATH, RELAPSE, Agent, Event, TherapyCategory

Errors = dict[str, list]

# What a clinical date is the date of, in "The %(what)s date ... is in the future."
WHAT = {
    "event": pgettext_lazy("the ... date", "event"),
    "infusion": pgettext_lazy("the ... date", "infusion"),
    "start": pgettext_lazy("the ... date", "start"),
    "assessment": pgettext_lazy("the ... date", "assessment"),
}

STUDY_ID_TAKEN = _(
    "Another patient has this study ID (study IDs are compared without regard to upper and "
    "lower case)."
)


def validate_study_id(value: str) -> None:
    problems = identifiers.study_id_problems(value)
    if problems:
        raise ValidationError(problems, code="invalid_study_id")


def study_id_taken_errors(*, patient, facts: PatientFacts) -> Errors:
    """Another patient with this study ID in any case (`facts.study_id_taken`: found by the
    loader, for an import for the whole batch in one query and within the batch, case-folded)."""
    if not patient.study_id:
        return {}
    return {"study_id": [STUDY_ID_TAKEN]} if facts.study_id_taken else {}


@dataclass(frozen=True)
class PatientFacts:
    """A patient's other records, as the checks below need them.

    A model's `clean()` without facts loads its patient's (`patients.facts.facts_for`, without
    the record being changed); an import passes them pre-loaded for many patients in a few
    set-based queries, with the batch's own records added, so that a whole batch is checked with
    the same rules and without a query per row.
    """

    infusion_dates: tuple[date, ...] = ()
    events: tuple[tuple[str, date], ...] = ()  # (kind, date) of every clinical event
    # (analyte, specimen, collected_at) of the results already stored (the duplicate check).
    lab_keys: frozenset = frozenset()
    # Whether another patient has the study ID (any case).
    study_id_taken: bool = False
    # The earliest date of any clinical record (a birth date cannot be after it).
    earliest_record: date | None = None
    # (analyte, collected_at, canonical value) of the stored results, for plausibility: the
    # other values of the same sample and each analyte's previous value (an import feeds its
    # plausibility from its own batch-wide facts, `patients.ingest.plausibility`).
    lab_values: tuple[tuple[str, datetime, Decimal | None], ...] = ()
    # The center's plausibility limits in force (`patients.plausibility.Limits`); None: defaults.
    limits: object = None

    @property
    def first_infusion(self) -> date | None:
        return min(self.infusion_dates, default=None)

    @property
    def death_date(self) -> date | None:
        return min((d for kind, d in self.events if kind == DEATH), default=None)


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def today_in(tz) -> date:
    return timezone.now().astimezone(tz).date()


def check_clinical_date(
    errors: Errors, field: str, value: date | None, *, patient, what: str
) -> None:
    """A clinical date can be neither in the future nor before the patient's birth."""
    if value is None or patient is None:
        return
    if value > today_in(patient.center.tzinfo):
        _add(
            errors,
            field,
            _("The %(what)s date %(date)s is in the future.")
            % {"what": WHAT.get(what, what), "date": f"{value:%d %b %Y}"},
        )
    if patient.date_of_birth and value < patient.date_of_birth:
        _add(
            errors,
            field,
            _("The %(what)s date %(date)s is before the patient's birth (%(birth)s).")
            % {
                "what": WHAT.get(what, what),
                "date": f"{value:%d %b %Y}",
                "birth": f"{patient.date_of_birth:%d %b %Y}",
            },
        )


def birth_date_errors(*, patient, date_of_birth: date, facts: PatientFacts) -> Errors:
    """A birth date can be neither in the future nor after any clinical date already recorded."""
    errors: Errors = {}
    if date_of_birth > today_in(patient.center.tzinfo):
        _add(errors, "date_of_birth", _("The date of birth is in the future."))
    earliest = facts.earliest_record
    if earliest is not None and date_of_birth > earliest:
        _add(
            errors,
            "date_of_birth",
            _(
                "The date of birth is after data already recorded for this patient (the "
                "earliest on %(date)s); correct that first."
            )
            % {"date": f"{earliest:%d %b %Y}"},
        )
    return errors


def lab_result_errors(
    *,
    patient,
    analyte: str,
    specimen: str,
    collected_at: datetime | None,
    value: Decimal | None,
    unit: str,
    qualifier: str,
    facts: PatientFacts,
) -> Errors:
    errors: Errors = {}
    definition = units.ANALYTES.get(analyte)
    if definition is None:
        _add(errors, "analyte", _("Unknown analyte %(analyte)r.") % {"analyte": analyte})
        return errors
    if specimen and specimen != definition.specimen:
        _add(
            errors,
            "specimen",
            _("%(analyte)s is measured in %(specimen)s, not %(given)s.")
            % {
                "analyte": definition.label,
                "specimen": str(dict(units.SPECIMEN_CHOICES)[definition.specimen]).lower(),
                "given": str(dict(units.SPECIMEN_CHOICES).get(specimen, specimen)).lower(),
            },
        )
    if value is None and not qualifier:
        _add(errors, "value", _("Enter a value, or choose a qualifier such as “Undetectable”."))
    if value is not None and qualifier:
        _add(
            errors,
            "qualifier",
            _(
                "Give either a value or a qualifier, not both: an undetectable "
                "result is stored as a qualifier, never as a number."
            ),
        )
    if value is not None and value < 0:
        _add(errors, "value", _("A value cannot be negative."))
    if value is not None and definition.maximum is not None and value > definition.maximum:
        if definition.maximum == 100:
            _add(errors, "value", _("A percentage cannot be over 100."))
        else:
            _add(
                errors,
                "value",
                _("A fraction cannot be over %(maximum)s.") % {"maximum": definition.maximum},
            )
    if unit and unit not in definition.units:
        allowed = ", ".join(units.UNIT_LABELS[u] for u in definition.units)
        _add(
            errors,
            "unit",
            _("%(unit)s is not a unit of %(analyte)s; use %(allowed)s.")
            % {
                "unit": units.UNIT_LABELS.get(unit, unit),
                "analyte": definition.label,
                "allowed": allowed,
            },
        )
    if not unit:
        _add(errors, "unit", _("Choose a unit."))
    if collected_at is not None and patient is not None:
        if collected_at > timezone.now():
            _add(errors, "collected_at", _("The collection time is in the future."))
        local = collected_at.astimezone(patient.center.tzinfo).date()
        if patient.date_of_birth and local < patient.date_of_birth:
            _add(
                errors,
                "collected_at",
                _("The collection date is before the patient's birth (%(birth)s).")
                % {"birth": f"{patient.date_of_birth:%d %b %Y}"},
            )
        if (analyte, specimen or definition.specimen, collected_at) in facts.lab_keys:
            _add(
                errors,
                "collected_at",
                _(
                    "%(analyte)s collected at this time is already recorded for this "
                    "patient: correct the existing result instead of entering it again."
                )
                % {"analyte": definition.label},
            )
    return errors


def event_errors(*, patient, kind: str, event_date: date | None, facts: PatientFacts) -> Errors:
    errors: Errors = {}
    check_clinical_date(errors, "event_date", event_date, patient=patient, what="event")
    if event_date is None or patient is None:
        return errors
    if kind in (RELAPSE, DEATH):
        first = facts.first_infusion
        if first is None:
            _add(
                errors,
                "kind",
                _("Record the CAR-T infusion first: a relapse or death is counted from it."),
            )
        elif event_date < first:
            _add(
                errors,
                "event_date",
                (
                    _("A relapse cannot be before the first infusion (%(date)s).")
                    if kind == RELAPSE
                    else _("A death cannot be before the first infusion (%(date)s).")
                )
                % {"date": f"{first:%d %b %Y}"},
            )
    if kind == DEATH:
        if any(d > event_date for _kind, d in facts.events):
            _add(
                errors,
                "event_date",
                _("Other events are recorded after this date of death; correct them first."),
            )
    else:
        died = facts.death_date
        if died and event_date > died:
            _add(
                errors,
                "event_date",
                _("This is after the recorded death (%(date)s).") % {"date": f"{died:%d %b %Y}"},
            )
    return errors


def infusion_errors(*, patient, infusion_date: date | None, facts: PatientFacts) -> Errors:
    errors: Errors = {}
    check_clinical_date(errors, "infusion_date", infusion_date, patient=patient, what="infusion")
    if infusion_date is None or patient is None:
        return errors
    first = min([infusion_date, *facts.infusion_dates])
    early = min(
        ((d, kind) for kind, d in facts.events if kind in (RELAPSE, DEATH) and d < first),
        default=None,
    )
    if early:
        _add(
            errors,
            "infusion_date",
            _("The %(event)s on %(date)s would then be before the first infusion.")
            % {"event": str(Event(early[1]).label).lower(), "date": f"{early[0]:%d %b %Y}"},
        )
    return errors


def therapy_errors(
    *,
    patient,
    start_date: date | None,
    category: str,
    agent: str,
    facts: PatientFacts,
) -> Errors:
    errors: Errors = {}
    check_clinical_date(errors, "start_date", start_date, patient=patient, what="start")
    expected = AGENT_CATEGORY.get(agent)
    if expected and category and expected != category:
        _add(
            errors,
            "category",
            _("%(agent)s is %(category)s therapy.")
            % {
                "agent": Agent(agent).label,
                "category": str(TherapyCategory(expected).label).lower(),
            },
        )
    if start_date and patient is not None:
        first = facts.first_infusion
        if first is None:
            _add(
                errors,
                "start_date",
                _("Record the CAR-T infusion first: pre-emptive therapy follows it."),
            )
        elif start_date < first:
            _add(
                errors,
                "start_date",
                _("Pre-emptive therapy cannot start before the first infusion (%(date)s).")
                % {"date": f"{first:%d %b %Y}"},
            )
    return errors
