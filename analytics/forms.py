from datetime import date

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from patients.models import Center, Infusion
from patients.selectors import center_code_restricted_to

FIXED_COHORTS_ONLY = _(
    "Views of all centers or of another center take a whole calendar year of infusion (pick "
    "a year), not a date range: a range moved by a day would show one patient's outcome. "
    "Exact date ranges are open for your own center's view."
)


class CohortForm(forms.Form):
    """The dashboard's cohort. A center's own users may pick any date range for their own
    center; every other view (all centers, another center) is a fixed cohort: a product (or
    all) and a calendar year of first infusion (or all years), so that two views cannot differ
    by one patient (SECURITY.md, "Small cells and differencing")."""

    center = forms.ChoiceField(required=False, label=_("Center"))
    product = forms.ChoiceField(required=False, label=_("Product"))
    infusion_year = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label=_("Year of infusion")
    )
    infused_from = forms.DateField(
        required=False, label=_("Infused from"), widget=forms.DateInput(attrs={"type": "date"})
    )
    infused_to = forms.DateField(
        required=False,
        label=pgettext_lazy("date range", "to"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["center"].choices = [
            ("", _("All centers")),
            *Center.objects.values_list("code", "name"),
        ]
        products = Infusion.objects.order_by("product").values_list("product", flat=True)
        self.fields["product"].choices = [
            ("", _("All products")),
            *[(p, p) for p in products.distinct()],
        ]
        years = Infusion.objects.filter(infusion_number=1).dates("infusion_date", "year")
        self.fields["infusion_year"].choices = [
            ("", _("All years")),
            *[(d.year, str(d.year)) for d in years],
        ]

    def own_center(self) -> str:
        """The viewer's own center code ("" for none or for registry staff)."""
        return (center_code_restricted_to(self.user) or "") if self.user is not None else ""

    def clean(self):
        data = super().clean()
        start, end = data.get("infused_from"), data.get("infused_to")
        year = data.get("infusion_year")
        if year is not None:
            if (start or end) and (start, end) != (date(year, 1, 1), date(year, 12, 31)):
                raise forms.ValidationError(
                    _("Pick either a year of infusion or a date range, not both.")
                )
            data["infused_from"], data["infused_to"] = date(year, 1, 1), date(year, 12, 31)
            start, end = data["infused_from"], data["infused_to"]
        if start and end and start > end:
            raise forms.ValidationError(_("The start of the infusion date range is after its end."))
        own = self.own_center()
        exact = bool(own) and data.get("center") == own
        whole_year = (
            start is not None
            and end is not None
            and start.year == end.year
            and (start.month, start.day, end.month, end.day) == (1, 1, 12, 31)
        )
        if (start or end) and not exact and not whole_year:
            raise forms.ValidationError(FIXED_COHORTS_ONLY)
        return data

    def options(self) -> dict:
        data = self.cleaned_data
        return {
            key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in data.items()
            if value and key != "infusion_year"
        }
