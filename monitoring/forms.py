from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from monitoring.models import OUTCOME_CHOICES, SEVERITY_CHOICES, STATUS_CHOICES
from patients.models import AGENT_CHOICES, PreemptiveTherapy
from patients.vocabulary import AGENT_CATEGORY, PREEMPTION_OUTCOMES


class InboxFilterForm(forms.Form):
    severity = forms.ChoiceField(
        choices=[("", _("Any severity")), *SEVERITY_CHOICES], required=False
    )
    center = forms.ChoiceField(choices=[("", _("Any center"))], required=False)
    status = forms.ChoiceField(
        choices=[
            ("active", _("Open or acknowledged")),
            *STATUS_CHOICES,
            ("historical", _("Historical (imported)")),
            ("all", _("Any status")),
        ],
        required=False,
    )

    def __init__(self, *args, centers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["center"].choices = [
            ("", _("Any center")),
            *[(c.code, c.name) for c in centers],
        ]


class PreferencesForm(forms.Form):
    email_low_severity = forms.BooleanField(
        required=False,
        label=_("Also e-mail me about warning, info and reminder alerts"),
        help_text=_("High-severity alerts are always e-mailed to the patient's hematologists."),
    )
    language = forms.ChoiceField(
        required=False,
        label=_("Language of the pages and e-mails"),
        choices=[("", _("The browser's language")), *settings.LANGUAGES],
    )


class AlertCloseForm(forms.Form):
    outcome = forms.ChoiceField(choices=OUTCOME_CHOICES, widget=forms.RadioSelect)
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required for “not relevant”."),
    )
    therapy = forms.ModelChoiceField(
        queryset=PreemptiveTherapy.objects.none(),
        required=False,
        label=_("Therapy already recorded"),
    )
    start_date = forms.DateField(
        required=False,
        label=_("Or record it: start date"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    agent = forms.ChoiceField(choices=[("", "—"), *AGENT_CHOICES], required=False)
    agent_detail = forms.CharField(
        required=False, max_length=200, help_text=_("e.g. blinatumomab, FLAG-Ida")
    )

    def __init__(self, *args, patient=None, **kwargs):
        super().__init__(*args, **kwargs)
        if patient is not None:
            self.fields["therapy"].queryset = patient.therapies.all()

    def new_therapy(self) -> PreemptiveTherapy | None:
        data = self.cleaned_data
        if not data.get("start_date") and not data.get("agent"):
            return None
        outcome = data["outcome"]
        category = AGENT_CATEGORY.get(data.get("agent"), "other")
        if outcome in PREEMPTION_OUTCOMES and data.get("agent") == "other":
            category = outcome
        return PreemptiveTherapy(
            start_date=data.get("start_date"),
            agent=data.get("agent") or "",
            category=category,
            agent_detail=data.get("agent_detail", ""),
        )
