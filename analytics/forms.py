from django import forms

from patients.models import Center, Infusion


class CohortForm(forms.Form):
    center = forms.ChoiceField(required=False)
    product = forms.ChoiceField(required=False)
    infused_from = forms.DateField(
        required=False, label="Infused from", widget=forms.DateInput(attrs={"type": "date"})
    )
    infused_to = forms.DateField(
        required=False, label="to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["center"].choices = [
            ("", "All centers"),
            *Center.objects.values_list("code", "name"),
        ]
        products = Infusion.objects.order_by("product").values_list("product", flat=True)
        self.fields["product"].choices = [
            ("", "All products"),
            *[(p, p) for p in products.distinct()],
        ]

    def clean(self):
        data = super().clean()
        start, end = data.get("infused_from"), data.get("infused_to")
        if start and end and start > end:
            raise forms.ValidationError("The start of the infusion date range is after its end.")
        return data

    def options(self) -> dict:
        data = self.cleaned_data
        return {
            key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in data.items()
            if value
        }
