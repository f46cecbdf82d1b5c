"""The clinical data model (CLINICAL.md sections 2–3).

Models hold fields, constraints and small derived properties. Validation that needs other rows
(dates against birth and infusions, duplicates) lives in `patients.validation`, and every change
goes through `patients.services`, so the browser, the admin and the API share one set of rules.
"""

from __future__ import annotations

import zoneinfo
from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from patients import plausibility_checks, units, validation
from patients.facts import facts_for
from patients.formats import human_date
from patients.vocabulary import DEATH, Agent, Cd19, Event, Mrd, Response, TherapyCategory


def _raise(errors: validation.Errors) -> None:
    if errors:
        raise ValidationError(errors)


SEX_CHOICES = [("F", _("Female")), ("M", _("Male")), ("U", _("Unknown"))]


class Center(models.Model):
    code = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    # A result's day after infusion is the calendar date of its collection in this time zone.
    time_zone = models.CharField(max_length=64, default=settings.TIME_ZONE)
    # How the center's spreadsheets write a date with slashes: 02/11/2026 is 2 November (day
    # first) or 11 February (month first). Empty: such a date is refused as ambiguous. A date
    # with dots (02.11.2026) is always day first; YYYY-MM-DD is always read.
    date_order = models.CharField(
        _("date order of spreadsheets"),
        max_length=3,
        blank=True,
        default="",
        choices=[
            ("dmy", _("Day first (02/11/2026 is 2 November)")),
            ("mdy", _("Month first (11/02/2026 is 2 November)")),
        ],
        help_text=_("How dates with slashes are read in this center's spreadsheets."),
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class ClinicianProfile(models.Model):
    """Which center a user works for and how they want to be notified."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    center = models.ForeignKey(
        Center,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="staff",
        help_text=_("Empty for registry staff who see every center."),
    )
    email_low_severity = models.BooleanField(
        default=True,
        help_text=_(
            "Also e-mail me about warning, info and reminder alerts (high alerts always are)."
        ),
    )
    language = models.CharField(
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("The interface's and the e-mails' language; empty: the browser's language."),
    )
    # Which center a user belongs to decides which patients they see: every change is kept.
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.user} ({self.center or 'all centers'})"


class Patient(models.Model):
    center = models.ForeignKey(Center, on_delete=models.PROTECT, related_name="patients")
    study_id = models.CharField(
        _("study ID"),
        max_length=32,
        unique=True,
        validators=[validation.validate_study_id],
        help_text=_("Pseudonymous ID shown everywhere: letters, digits, “-”, “_” and “.”."),
    )
    # Restricted identifiers: shown only to users with the view_identifiers permission.
    mrn = models.CharField("MRN", max_length=64, blank=True)
    full_name = models.CharField(max_length=200, blank=True)
    sex = models.CharField(max_length=1, choices=SEX_CHOICES, default="U")
    date_of_birth = models.DateField(null=True, blank=True)
    DEFAULT_DIAGNOSIS = "R/R B-ALL"
    diagnosis = models.CharField(max_length=200, default=DEFAULT_DIAGNOSIS, blank=True)
    ph_positive = models.BooleanField("Ph+", null=True, blank=True)
    hematologists = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="patients"
    )
    is_synthetic = models.BooleanField(
        default=False, help_text=_("Generated demo data, not a real patient.")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(m2m_fields=[hematologists])

    class Meta:
        ordering = ["study_id"]
        permissions = [
            ("view_identifiers", _("Can see patients' MRN and name")),
            ("view_all_centers", _("Can see patients of every center")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["center", "mrn"],
                condition=~Q(mrn=""),
                name="patient_mrn_unique_per_center",
                violation_error_message=_("Another patient of this center has this MRN."),
            ),
            models.UniqueConstraint(
                Lower("study_id"),
                name="patient_study_id_unique_ignoring_case",
                violation_error_message=validation.STUDY_ID_TAKEN,
            ),
        ]

    def __str__(self) -> str:
        return self.study_id

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        # An import passes the facts it loaded for the whole batch; alone, the patient's own.
        if facts is None:
            facts = facts_for(
                self, study_id=True, earliest=bool(self.date_of_birth and self.center_id)
            )
        errors = validation.study_id_taken_errors(patient=self, facts=facts)
        if self.date_of_birth and self.center_id:
            errors |= validation.birth_date_errors(
                patient=self, date_of_birth=self.date_of_birth, facts=facts
            )
        _raise(errors)

    def age_on(self, day: date) -> int | None:
        if self.date_of_birth is None:
            return None
        dob = self.date_of_birth
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


class Infusion(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="infusions")
    infusion_date = models.DateField(help_text=_("Day 0."))
    infusion_number = models.PositiveSmallIntegerField(
        validators=[
            MinValueValidator(1, _("The first CAR-T infusion is number 1; a number is at least 1."))
        ],
        help_text=_("1 for the first CAR-T infusion; a second infusion is a new record with 2."),
    )
    product = models.CharField(max_length=100)
    target_antigen = models.CharField(max_length=20, default="CD19")
    dose_cells_per_kg = models.DecimalField(
        _("dose (cells/kg)"),
        max_digits=14,
        decimal_places=0,
        null=True,
        blank=True,
        validators=[MinValueValidator(0, _("A dose cannot be negative."))],
    )
    lymphodepletion = models.CharField(
        max_length=200, blank=True, help_text=_("e.g. fludarabine + cyclophosphamide")
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "infusion_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "infusion_number"],
                name="infusion_number_unique_per_patient",
                violation_error_message=_("This patient already has an infusion with this number."),
            ),
            models.UniqueConstraint(
                fields=["patient", "infusion_date"],
                name="infusion_date_unique_per_patient",
                violation_error_message=_("This patient already has an infusion on this date."),
            ),
            models.CheckConstraint(
                condition=Q(dose_cells_per_kg__gte=0),
                name="infusion_dose_not_negative",
                violation_error_message=_("A dose cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} infusion {self.infusion_number} ({human_date(self.infusion_date)})"

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        # An import passes the patient's facts pre-loaded (and its patient may be new, unsaved).
        if self.patient_id or facts is not None:
            _raise(
                validation.infusion_errors(
                    patient=self.patient,
                    infusion_date=self.infusion_date,
                    facts=facts or facts_for(self.patient, excluding=self, dates=True),
                )
            )


class LabResult(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="lab_results")
    analyte = models.CharField(max_length=20, choices=units.ANALYTE_CHOICES)
    # Follows from the analyte when left empty (PB B cells are peripheral blood).
    specimen = models.CharField(max_length=2, choices=units.SPECIMEN_CHOICES, blank=True)
    collected_at = models.DateTimeField()
    # As entered: the value and its unit. A qualifier replaces the value (never a made-up number).
    value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    unit = models.CharField(max_length=20, choices=units.UNIT_CHOICES)
    qualifier = models.CharField(max_length=20, choices=units.QUALIFIER_CHOICES, blank=True)
    # The value converted to the analyte's canonical unit (cells/µL for counts).
    canonical_value = models.DecimalField(
        max_digits=24, decimal_places=6, null=True, blank=True, editable=False
    )
    canonical_unit = models.CharField(
        max_length=20, choices=units.UNIT_CHOICES, blank=True, editable=False
    )
    method = models.CharField(max_length=100, blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    entered_at = models.DateTimeField(auto_now_add=True)
    # A value outside a soft plausibility limit is kept only once a person confirmed it; the
    # warning they confirmed and who did are kept (and audited with every change).
    plausibility_confirmed = models.BooleanField(
        _("the value is correct"),
        default=False,
        help_text=_("Tick after checking a value that was marked as unusual."),
    )
    plausibility_warning = models.CharField(max_length=1000, blank=True, editable=False)
    plausibility_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "collected_at", "analyte"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "analyte", "specimen", "collected_at"],
                name="lab_result_no_exact_duplicate",
                violation_error_message=(
                    "This analyte collected at this time is already recorded for this patient: "
                    "correct the existing result instead of entering it again."
                ),
            ),
            models.CheckConstraint(
                condition=(
                    Q(value__isnull=False, qualifier="") | Q(value__isnull=True) & ~Q(qualifier="")
                ),
                name="lab_result_value_xor_qualifier",
                violation_error_message=_("Give either a value or a qualifier, not both."),
            ),
            models.CheckConstraint(
                condition=Q(value__gte=0) | Q(value__isnull=True),
                name="lab_result_value_not_negative",
                violation_error_message=_("A value cannot be negative."),
            ),
        ]
        indexes = [models.Index(fields=["patient", "analyte", "collected_at"])]

    def __str__(self) -> str:
        when = self.collected_at.astimezone(self.patient.center.tzinfo)
        return f"{self.get_analyte_display()} {self.display_value} ({human_date(when.date())})"

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        definition = units.ANALYTES.get(self.analyte)
        if definition is not None:
            self.specimen = self.specimen or definition.specimen
            self.canonical_unit = definition.canonical_unit
        if self.patient_id is None and facts is None:
            return
        # One result on its own (a correction, the admin) is checked with its patient's facts
        # and its plausibility here; a new sample (the form's, an import's) as a whole by
        # patients.ingest.samples, which passes the facts it loaded.
        alone = facts is None
        if alone:
            facts = facts_for(self.patient, excluding=self, labs=True)
        errors = validation.lab_result_errors(
            patient=self.patient,
            analyte=self.analyte,
            specimen=self.specimen,
            collected_at=self.collected_at,
            value=self.value,
            unit=self.unit,
            qualifier=self.qualifier,
            facts=facts,
        )
        _raise(errors)
        self.canonical_value = (
            None if self.value is None else units.to_canonical(self.analyte, self.value, self.unit)
        )
        if self.canonical_value is None:  # a qualifier: nothing to find implausible
            plausibility_checks.confirmation_apply(self, [], confirmed=False)
        elif alone:
            findings = plausibility_checks.sample_plausibility(
                collected_at=self.collected_at,
                values={self.analyte: self.canonical_value},
                facts=facts,
            )
            refusals = plausibility_checks.confirmation_apply(
                self, findings, confirmed=self.plausibility_confirmed
            )
            _raise({"value": refusals} if refusals else {})

    @property
    def display_value(self) -> str:
        if self.qualifier:
            return self.get_qualifier_display()
        return f"{self.value.normalize():f} {units.UNIT_LABELS[self.unit]}"


RESPONSE_CHOICES = Response.choices
MRD_CHOICES = Mrd.choices


class ResponseAssessment(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="responses")
    assessed_on = models.DateField()
    response = models.CharField(max_length=3, choices=RESPONSE_CHOICES)
    mrd_status = models.CharField(
        _("MRD status"), max_length=10, choices=MRD_CHOICES, default="unknown"
    )
    notes = models.CharField(max_length=500, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "assessed_on"]

    def __str__(self) -> str:
        return f"{self.response} on {human_date(self.assessed_on)}"

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        if self.patient_id or facts is not None:
            errors: validation.Errors = {}
            validation.check_clinical_date(
                errors, "assessed_on", self.assessed_on, patient=self.patient, what="assessment"
            )
            _raise(errors)


EVENT_CHOICES = Event.choices
CD19_CHOICES = Cd19.choices


class ClinicalEvent(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=EVENT_CHOICES)
    event_date = models.DateField()
    relapse_cd19 = models.CharField(
        _("relapse CD19 status"), max_length=10, choices=CD19_CHOICES, blank=True
    )
    relapse_site = models.CharField(
        max_length=100, blank=True, help_text=_("e.g. bone marrow, CNS, extramedullary")
    )
    death_cause = models.CharField(max_length=200, blank=True)
    notes = models.CharField(max_length=500, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "event_date"]
        constraints = [
            # A patient dies once.
            models.UniqueConstraint(
                fields=["patient"], condition=Q(kind=DEATH), name="one_death_per_patient"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {human_date(self.event_date)}"

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        if self.patient_id or facts is not None:
            _raise(
                validation.event_errors(
                    patient=self.patient,
                    kind=self.kind,
                    event_date=self.event_date,
                    facts=facts or facts_for(self.patient, excluding=self, dates=True),
                )
            )


THERAPY_CATEGORY_CHOICES = TherapyCategory.choices
AGENT_CHOICES = Agent.choices


class PreemptiveTherapy(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="therapies")
    start_date = models.DateField()
    category = models.CharField(max_length=20, choices=THERAPY_CATEGORY_CHOICES)
    agent = models.CharField(max_length=20, choices=AGENT_CHOICES)
    agent_detail = models.CharField(
        max_length=200, blank=True, help_text=_("e.g. blinatumomab, inotuzumab, dasatinib")
    )
    notes = models.CharField(max_length=500, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "start_date"]
        verbose_name_plural = _("pre-emptive therapies")

    def __str__(self) -> str:
        return f"{self.get_agent_display()} from {human_date(self.start_date)}"

    def clean(self, *, facts: validation.PatientFacts | None = None) -> None:
        if self.patient_id or facts is not None:
            _raise(
                validation.therapy_errors(
                    patient=self.patient,
                    start_date=self.start_date,
                    category=self.category,
                    agent=self.agent,
                    facts=facts or facts_for(self.patient, dates=True),
                )
            )


from patients.limits import PlausibilityLimits  # noqa: E402, F401  (a model of this app)
