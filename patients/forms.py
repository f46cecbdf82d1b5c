"""Forms parse the browser's input; validation itself lives in the models and services."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from patients import plausibility_checks, services, units
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
from patients.validation import today_in

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
        measured = [
            code
            for code in units.ANALYTES
            # An analyte without a value or a qualifier was not measured in this sample.
            if data.get(f"{code}-value") is not None or data.get(f"{code}-qualifier")
        ]
        return self._values(measured, confirmed=self._confirmed())

    def _values(self, codes: list[str], *, confirmed: set[str]) -> list[LabValue]:
        data = self.cleaned_data
        return [
            LabValue(
                analyte=code,
                value=data.get(f"{code}-value"),
                unit=data.get(f"{code}-unit") or "",
                qualifier=data.get(f"{code}-qualifier") or "",
                method=data.get("method", ""),
                confirmed=code in confirmed,
            )
            for code in codes
        ]

    def clean(self):
        """Every problem of the sample in one round: the fields' own errors, then what the save
        would refuse and the collection date's plausibility, from the save's own checks
        (`services.sample_preview`), so that a person corrects everything at once."""
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
        parsed = [code for code in entered if not self.has_error(f"{code}-value")]
        found = services.sample_preview(
            patient=self.patient,
            collected_at=cleaned.get("collected_at"),
            values=self._values(parsed, confirmed=set()),
        )
        errors, unconfirmed, date_soft, date_unconfirmed = self._refusals(found)
        if unconfirmed or date_unconfirmed:  # before the errors take values off cleaned_data
            # The box asks again for everything it covers, a date already confirmed included.
            self.ask_confirmation(unconfirmed, date=date_soft)
        for field, messages in errors.items():
            for message in messages:
                text = message.messages[0] if isinstance(message, ValidationError) else message
                if str(text) not in self.errors.get(field or "__all__", []):
                    self.add_error(field, message)
        return cleaned

    def _refusals(self, found: dict) -> tuple[dict, list[str], bool, bool]:
        """The preview's refusals under the form's fields, without the soft ones the person
        confirmed; the analytes that wait for a confirmation; whether the collection date needs
        one, and whether it still waits for it."""
        confirmed = self._confirmed()
        errors: dict[str | None, list] = {}
        unconfirmed: list[str] = []
        date_soft = date_unconfirmed = False
        for key, messages in found.items():
            code, _dash, name = key.partition("-")
            for message in messages:
                soft = message.code == plausibility_checks.UNCONFIRMED
                if key == "collected_at":
                    if self.cleaned_data.get("collected_at") is None:
                        continue  # no time was read: the date and time fields say why
                    date_soft = date_soft or soft
                    if soft and self.date_confirmed():
                        continue
                    date_unconfirmed = date_unconfirmed or soft
                    field = "collected_date"
                elif name:
                    if soft and name == "value":
                        if code in confirmed:
                            continue
                        if code not in unconfirmed:
                            unconfirmed.append(code)
                    field = key if key in self.fields else None
                else:
                    field = None
                errors.setdefault(field, []).append(message)
        errors.setdefault("collected_date", []).extend(self._date_read())
        return errors, unconfirmed, date_soft, date_unconfirmed

    def _date_read(self) -> list[str]:
        """A collection date after today, said with the date as read and its day after the
        infusion (issue 23), beside the model's "in the future" that the save refuses it with."""
        on = self.cleaned_data.get("collected_date")
        if on is None or on <= today_in(self.patient.center.tzinfo):
            return []
        facts = facts_for(self.patient, dates=True, labs=True)
        findings = plausibility_checks.sample_date_findings(
            patient=self.patient, on=on, facts=facts
        )
        return [f.message for f in findings if f.is_hard]
