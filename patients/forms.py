"""Forms parse the browser's input; validation itself lives in the models and services."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from patients import plausibility_checks, units, validation
from patients.days import LocalTimeError, at_local_time
from patients.facts import facts_for
from patients.fields import DecimalTextField
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.services import LabValue
from patients.validation import PatientFacts

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = [
            "study_id",
            "center",
            "sex",
            "date_of_birth",
            "diagnosis",
            "ph_positive",
            "hematologists",
            "mrn",
            "full_name",
        ]
        widgets = {"date_of_birth": DATE, "hematologists": forms.CheckboxSelectMultiple}

    def __init__(self, *args, user=None, centers=None, **kwargs):
        super().__init__(*args, **kwargs)
        if centers is not None:
            self.fields["center"].queryset = centers
        # Only clinicians of the patient's center may be made responsible for it (their e-mails
        # link to a page they can open); the field refuses anyone outside this list.
        center_ids = (
            [self.instance.center_id]
            if self.instance.pk
            else list(self.fields["center"].queryset.values_list("pk", flat=True))
        )
        self.fields["hematologists"].queryset = (
            get_user_model()
            .objects.filter(is_active=True, profile__center_id__in=center_ids)
            .order_by("last_name", "username")
        )
        self.fields["hematologists"].label_from_instance = _clinician_label
        if not self.instance.pk:
            # A pre-filled default is typed after, not over ("R/R B-ALLR/R B-ALL"): offer it as a
            # placeholder and apply it when the field is left empty.
            self.initial["diagnosis"] = ""
            self.fields["diagnosis"].widget.attrs["placeholder"] = Patient.DEFAULT_DIAGNOSIS
            self.fields["diagnosis"].help_text = _(
                "Left empty, it is recorded as %(diagnosis)s."
            ) % {"diagnosis": Patient.DEFAULT_DIAGNOSIS}
        if user is not None and not user.has_perm("patients.view_identifiers"):
            del self.fields["mrn"]
            del self.fields["full_name"]

    def clean_diagnosis(self) -> str:
        diagnosis = self.cleaned_data.get("diagnosis", "").strip()
        return diagnosis or ("" if self.instance.pk else Patient.DEFAULT_DIAGNOSIS)

    def clean(self):
        cleaned = super().clean()
        center = cleaned.get("center") or (self.instance.center if self.instance.pk else None)
        for user in cleaned.get("hematologists") or []:
            profile = getattr(user, "profile", None)
            if center is not None and (profile is None or profile.center_id != center.pk):
                self.add_error(
                    "hematologists",
                    _("%(user)s is not a clinician of %(center)s.")
                    % {"user": _clinician_label(user), "center": center.name},
                )
        return cleaned


def _clinician_label(user) -> str:
    return user.get_full_name() or user.username


class InfusionForm(forms.ModelForm):
    class Meta:
        model = Infusion
        fields = [
            "infusion_number",
            "infusion_date",
            "product",
            "target_antigen",
            "dose_cells_per_kg",
            "lymphodepletion",
        ]
        widgets = {"infusion_date": DATE}

    # Typed as text, read by the one number parser (a browser must not drop a comma).
    dose_cells_per_kg = DecimalTextField(
        max_digits=14, decimal_places=0, required=False, label=_("Dose (cells/kg)")
    )


class ResponseForm(forms.ModelForm):
    class Meta:
        model = ResponseAssessment
        fields = ["assessed_on", "response", "mrd_status", "notes"]
        widgets = {"assessed_on": DATE}


class EventForm(forms.ModelForm):
    class Meta:
        model = ClinicalEvent
        fields = ["kind", "event_date", "relapse_cd19", "relapse_site", "death_cause", "notes"]
        widgets = {"event_date": DATE}


class TherapyForm(forms.ModelForm):
    class Meta:
        model = PreemptiveTherapy
        fields = ["start_date", "category", "agent", "agent_detail", "notes"]
        widgets = {"start_date": DATE}


class LabResultForm(forms.ModelForm):
    """Correct one stored result."""

    class Meta:
        model = LabResult
        fields = [
            "analyte",
            "collected_at",
            "value",
            "unit",
            "qualifier",
            "method",
            "plausibility_confirmed",
        ]
        widgets = {
            "collected_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            )
        }

    value = DecimalTextField(required=False, help_text=_("e.g. 0.9 or 0,9"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A confirmation is given for the value shown now, never carried over to a new one.
        self.initial["plausibility_confirmed"] = False
        patient = getattr(self.instance, "patient", None)
        zone = patient.center.time_zone if patient is not None and patient.center_id else ""
        self.fields["collected_at"].help_text = (
            _("Local time in %(zone)s.") % {"zone": zone} if zone else ""
        )


class SampleForm(forms.Form):
    """One sampling date and time with several analytes, as results arrive from the lab."""

    collected_date = forms.DateField(label=_("Collection date"), widget=DATE)
    collected_time = forms.TimeField(
        label=_("Time"),
        initial=time(8, 0),
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    method = forms.CharField(
        required=False,
        max_length=100,
        help_text=_("e.g. flow cytometry (applies to every value below)"),
    )
    # Shown once values were marked as unusual: the person confirms them on a second look.
    confirm = forms.BooleanField(
        required=False, label=_("I have checked the values marked above: they are correct.")
    )
    # Which values the confirmation covers ("analyte=value unit" entries): a value changed after
    # the warning is checked again, never confirmed by the earlier tick.
    confirmed_values = forms.CharField(required=False, widget=forms.HiddenInput, max_length=2000)

    def __init__(self, *args, tz=None, patient=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz if tz is not None or patient is None else patient.center.tzinfo
        self.patient = patient
        self.needs_confirmation = False
        if tz is not None:
            self.fields["collected_time"].help_text = _("Local time in %(zone)s.") % {
                "zone": tz.key
            }
        for analyte in units.ANALYTES.values():
            code = analyte.code
            self.fields[f"{code}-value"] = DecimalTextField(
                required=False, label=analyte.label, max_digits=20, decimal_places=6
            )
            self.fields[f"{code}-unit"] = forms.ChoiceField(
                label=_("Unit"),
                choices=[(u, units.UNIT_LABELS[u]) for u in analyte.units],
                initial=analyte.canonical_unit,
            )
            self.fields[f"{code}-qualifier"] = forms.ChoiceField(
                label=pgettext_lazy("a value, or a qualifier", "or"),
                choices=units.QUALIFIER_CHOICES,
                required=False,
            )

    def rows(self):
        for analyte in units.ANALYTES.values():
            yield {
                "analyte": analyte,
                "value": self[f"{analyte.code}-value"],
                "unit": self[f"{analyte.code}-unit"],
                "qualifier": self[f"{analyte.code}-qualifier"],
            }

    def collected_at(self) -> datetime:
        return self.cleaned_data["collected_at"]

    def value_token(self, code: str) -> str:
        data = self.cleaned_data
        return f"{code}={data.get(f'{code}-value')} {data.get(f'{code}-unit')}"

    def date_token(self) -> str:
        return f"date={self.cleaned_data.get('collected_date')}"

    def ask_confirmation(self, analytes: list[str], *, date: bool = False) -> None:
        """Show the form again with the confirmation box, for exactly these values (and the
        collection date, if it is the one marked)."""
        tokens = [self.value_token(code) for code in analytes]
        if date:
            tokens.append(self.date_token())
        self.needs_confirmation = True
        self.data = self.data.copy()
        self.data["confirmed_values"] = ";".join(tokens)
        self.data["confirm"] = ""

    def _tokens(self) -> set[str]:
        if not self.cleaned_data.get("confirm"):
            return set()
        return set((self.cleaned_data.get("confirmed_values") or "").split(";"))

    def _confirmed(self) -> set[str]:
        tokens = self._tokens()
        return {code for code in units.ANALYTES if self.value_token(code) in tokens}

    def date_confirmed(self) -> bool:
        return self.date_token() in self._tokens()

    def lab_values(self) -> list[LabValue]:
        data = self.cleaned_data
        confirmed = self._confirmed()
        values = []
        for code in units.ANALYTES:
            value = data.get(f"{code}-value")
            qualifier = data.get(f"{code}-qualifier") or ""
            if value is None and not qualifier:
                continue  # this analyte was not measured in this sample
            values.append(
                LabValue(
                    analyte=code,
                    value=value,
                    unit=data[f"{code}-unit"],
                    qualifier=qualifier,
                    method=data.get("method", ""),
                    confirmed=code in confirmed,
                )
            )
        return values

    def clean(self):
        """Every problem of the sample in one round: the fields' own errors, the time, the date's
        and the values' plausibility and the rules between fields (patients.validation), so that
        a person corrects everything at once; the service checks the same again when saving."""
        cleaned = super().clean()
        if cleaned.get("collected_date") and cleaned.get("collected_time") and self.tz:
            try:
                cleaned["collected_at"] = at_local_time(
                    datetime.combine(cleaned["collected_date"], cleaned["collected_time"]), self.tz
                )
            except LocalTimeError as error:
                self.add_error("collected_time", str(error))
        entered = [
            code
            for code in units.ANALYTES
            if cleaned.get(f"{code}-value") is not None
            or cleaned.get(f"{code}-qualifier")
            or self.has_error(f"{code}-value")
        ]
        if not entered:
            self.add_error(None, _("Enter at least one result: a value or a qualifier."))
        if self.patient is None:
            return cleaned
        errors: dict[str, list] = {}
        parsed = [code for code in entered if not self.has_error(f"{code}-value")]
        facts = facts_for(self.patient, dates=True, labs=True)
        unconfirmed = self._check_values(parsed, errors, facts)
        date_soft, date_unconfirmed = self._check_date(errors, facts)
        if unconfirmed or date_unconfirmed:  # before the errors take values off cleaned_data
            # The box asks again for everything it covers, a date already confirmed included.
            self.ask_confirmation(unconfirmed, date=date_soft)
        for field, messages in errors.items():
            for message in messages:
                text = message.messages[0] if isinstance(message, ValidationError) else message
                if str(text) not in self.errors.get(field or "__all__", []):
                    self.add_error(field, message)
        return cleaned

    def _check_date(self, errors: dict, facts: PatientFacts) -> tuple[bool, bool]:
        """The collection date against the infusions, the patient's samples and today (issue 23):
        whether it needs a confirmation, and whether it still waits for one."""
        on = self.cleaned_data.get("collected_date")
        findings = plausibility_checks.sample_date_findings(
            patient=self.patient, on=on, facts=facts
        )
        refusals = plausibility_checks.plausibility_errors(
            findings, confirmed=self.date_confirmed(), field="collected_date"
        )
        for field, messages in refusals.items():
            errors.setdefault(field, []).extend(messages)
        soft = any(not f.is_hard for f in findings)
        return soft, any(
            e.code == plausibility_checks.UNCONFIRMED for e in refusals.get("collected_date", [])
        )

    def _check_values(self, entered: list[str], errors: dict, facts: PatientFacts) -> list[str]:
        """The rules between a row's fields and the values' plausibility; returns the analytes
        that wait for a confirmation."""
        data = self.cleaned_data
        when = data.get("collected_at")
        values = {}
        for code in entered:
            value, unit = data.get(f"{code}-value"), data.get(f"{code}-unit") or ""
            found = validation.lab_result_errors(
                patient=self.patient,
                analyte=code,
                specimen="",
                collected_at=when,
                value=value,
                unit=unit,
                qualifier=data.get(f"{code}-qualifier") or "",
                facts=facts,
            )
            for field, messages in found.items():
                if field == "collected_at":
                    key = "collected_date"
                else:
                    key = f"{code}-{field}" if f"{code}-{field}" in self.fields else None
                for message in messages:
                    if message not in errors.get(key, []):
                        errors.setdefault(key, []).append(message)
            if value is not None and unit and not found.get("value") and not found.get("unit"):
                values[code] = units.to_canonical(code, value, unit)
        if not values:
            return []
        findings = plausibility_checks.sample_plausibility(
            collected_at=when, values=values, facts=facts
        )
        confirmed = self._confirmed()
        unconfirmed = []
        for code in values:
            mine = [f for f in findings if f.analyte == code]
            refusals = plausibility_checks.plausibility_errors(mine, confirmed=code in confirmed)
            if refusals:
                errors.setdefault(f"{code}-value", []).extend(refusals["value"])
            if any(e.code == plausibility_checks.UNCONFIRMED for e in refusals.get("value", [])):
                unconfirmed.append(code)
        return unconfirmed
