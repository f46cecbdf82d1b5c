from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from imports.sheets import SHEETS


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("Spreadsheet (.xlsx or .csv)"),
        help_text=_("XLSX: one sheet per record type, as in the template. CSV: one record type."),
    )
    csv_sheet = forms.ChoiceField(
        label=_("A CSV file holds"),
        # the sheets' names are the template's (neutral, as in the file)
        choices=[("", _("— (XLSX: not needed)"))] + [(name, name) for name in SHEETS],
        required=False,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(megabytes)s MB; split it.")
                % {"megabytes": settings.IMPORT_UPLOAD_MAX_BYTES // (1024 * 1024)}
            )
        if not upload.name.lower().endswith((".xlsx", ".csv")):
            raise forms.ValidationError(_("Upload an .xlsx or a .csv file."))
        return upload

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload and upload.name.lower().endswith(".csv") and not data.get("csv_sheet"):
            self.add_error("csv_sheet", _("Say which record type the CSV file holds."))
        return data
