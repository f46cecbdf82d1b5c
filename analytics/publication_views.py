"""The publication tables page (Table 1 and Table 2) and its CSV / XLSX export.

Computed now from the analysis dataset of the chosen cohort (the dashboard's filters), with the
dashboards' small-cell rule (``services.small_cell_min_for``). Bad choices get a 400 with a
message, never a 500.
"""

from __future__ import annotations

import io

from django import forms
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from analytics import services
from analytics.adjusted import COVARIATES, DEFAULT_ADJUSTMENT, STRATA
from analytics.competing_models import landmark_competing_risks
from analytics.dataset import analysis_csv, analysis_frame
from analytics.dataset_schema import read_analysis_csv_lenient
from analytics.disclosure import WITHHELD, small_cell_label, withheld_shown
from analytics.forms import CohortForm
from analytics.publication import (
    GROUPINGS,
    competing_rows,
    format_p,
    table_one,
    table_one_rows,
    table_one_shown,
    table_two,
    table_two_rows,
    table_two_shown,
)
from carttrack.csv_safety import csv_response, neutralise_cell
from carttrack.replica import replica_view

FORMATS = ("html", "csv", "xlsx")


class PublicationForm(CohortForm):
    grouping = forms.ChoiceField(
        choices=list(GROUPINGS.items()),
        initial="early_regen",
        required=False,
        label=_("Table 1 by"),
    )
    covariates = forms.MultipleChoiceField(
        choices=[(k, v[0]) for k, v in COVARIATES.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Table 2 covariates"),
    )
    strata = forms.ChoiceField(
        choices=[("", _("none")), *[(s, s) for s in STRATA]],
        required=False,
        label=_("Strata"),
    )
    ties = forms.ChoiceField(
        choices=[("efron", "Efron"), ("breslow", "Breslow")], required=False, label=_("Ties")
    )
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The labels are messages kept in English for the files: shown in the reader's language.
        self.fields["grouping"].choices = [(k, gettext(v)) for k, v in GROUPINGS.items()]
        self.fields["covariates"].choices = [(k, gettext(v[0])) for k, v in COVARIATES.items()]

    def choices(self) -> dict:
        data = self.cleaned_data
        return {
            "grouping": data.get("grouping") or "early_regen",
            "covariates": list(data.get("covariates") or DEFAULT_ADJUSTMENT),
            "strata": data.get("strata") or None,
            "ties": data.get("ties") or "efron",
            "format": data.get("format") or "html",
        }

    def options(self) -> dict:
        cohort_fields = ("center", "product", "infused_from", "infused_to")
        return {k: v for k, v in super().options().items() if k in cohort_fields}


def _xlsx(sheets: list[tuple[str, list[str], list[list]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title)
        for row in [header, *rows]:  # text cells neutralised as in every CSV we write
            sheet.append([c if isinstance(c, (int, float)) else neutralise_cell(c) for c in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@require_http_methods(["GET"])
@replica_view
def publication_tables(request):
    # Other centers' and pooled cohorts are fixed (a year of infusion), as on the dashboard.
    form = PublicationForm(request.GET or None, user=request.user)
    if request.GET and not form.is_valid():
        return HttpResponseBadRequest(
            gettext("Cannot build the tables: {errors}").replace("{errors}", form.errors.as_text()),
            content_type="text/plain",
        )
    if not request.GET:
        form = PublicationForm(
            {"grouping": "early_regen", "ties": "efron", "covariates": list(DEFAULT_ADJUSTMENT)},
            user=request.user,
        )
        form.is_valid()
    choice = form.choices()
    cohort = services.cohort_from_options(form.options())
    minimum = services.small_cell_min_for(cohort, request.user)
    # as the snapshot: through the CSV reader, a row breaking the schema left out, counted
    frame, refused = read_analysis_csv_lenient(io.StringIO(analysis_csv(analysis_frame(cohort))))
    problems = []
    if refused:
        left_out = len({r.study_id for r in refused})
        problems.append(
            ngettext(
                "%(count)d patient left out: their row breaks the dataset schema (the dashboard "
                "names them to their center).",
                "%(count)d patients left out: their rows break the dataset schema (the "
                "dashboard names them to their center).",
                left_out,
            )
            % {"count": left_out}
        )
    # Another center's or a pooled view: no count that a subtraction of two views the reader
    # can open would give away (the dashboards' rule, SECURITY.md); the models' patient and
    # event counts are withheld there altogether.
    withheld = (
        services.table_one_withheld_for(cohort, request.user, grouping=choice["grouping"])
        if minimum
        else set()
    )
    one = two = None
    try:
        one = table_one(frame, grouping=choice["grouping"], minimum=minimum, withheld=withheld)
    except ValueError as problem:
        problems.append(f"Table 1: {problem}")
    try:
        two = table_two(
            frame,
            covariates=choice["covariates"],
            strata=choice["strata"],
            ties=choice["ties"],
            minimum=minimum,
        )
    except ValueError as problem:
        problems.append(f"Table 2: {problem}")
    competing = landmark_competing_risks(frame)
    for key in ("n", "events", "competing_events"):
        competing[key] = WITHHELD if minimum else small_cell_label(competing[key], minimum)
    if two and minimum:
        two["n"] = WITHHELD if two["n"] is not None else None
        two["events"] = WITHHELD if two["events"] is not None else None
    sheets = []
    if one:
        sheets.append(("Table 1", *table_one_rows(one)))
    if two:
        sheets.append(("Table 2", *table_two_rows(two)))
    if competing["fine_gray"]:
        sheets.append(("Competing risks", *competing_rows(competing)))
    if choice["format"] in ("csv", "xlsx") and not sheets:
        return HttpResponseBadRequest(
            "Cannot export: " + " ".join(problems), content_type="text/plain"
        )
    if choice["format"] == "csv":
        # The tables one under the other, each under its title and followed by a blank line;
        # the first title is the file's first line.
        lines = [line for title, header, rows in sheets for line in ([title], header, *rows, [])]
        return csv_response(lines[0], lines[1:], filename="carttrack-tables.csv")
    if choice["format"] == "xlsx":
        response = HttpResponse(
            _xlsx(sheets),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        response["Content-Disposition"] = 'attachment; filename="carttrack-tables.xlsx"'
        response["Cache-Control"] = "no-store"
        return response
    return render(
        request,
        "analytics/publication.html",
        {
            "form": form,
            # The page in the reader's language; the CSV and XLSX above stay in English.
            "one": withheld_shown(table_one_shown(one)) if one else one,
            "two": withheld_shown(table_two_shown(two)) if two else two,
            "problems": problems,
            "cohort": cohort,
            "query": request.GET.urlencode(),
            "minimum": minimum,
            "format_p": format_p,
        },
    )
