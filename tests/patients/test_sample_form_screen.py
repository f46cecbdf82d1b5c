"""The sample form at a glance (issue 23, item 6): a form sent back lists all its errors at the
top, each a link to its field, and every analyte's cells carry the words a phone shows above
its value, unit and qualifier when the row is stacked."""

from __future__ import annotations

import re

from patients import units
from patients.models import LabResult
from tests.patients.conftest import sample_data
from tests.patients.page_text import error_summary


def test_a_sample_sent_back_lists_every_bad_value_at_the_top_linked_to_its_field(
    clinician_client, infused_patient
):
    data = sample_data("2025-03-15", pb_bcell_pct="120", alc="-1")

    page = clinician_client.post("/patients/CT-0001/samples/add/", data).content.decode()

    lines = error_summary(page)
    pct, alc = units.ANALYTES[units.PB_BCELL_PCT].label, units.ANALYTES[units.ALC].label
    assert f"{pct}: A percentage cannot be over 100." in lines
    assert f"{alc}: A value cannot be negative." in lines
    links = re.findall(r'<a href="#([^"]+)">', page.split('class="error-summary"')[1])
    assert {"id_pb_bcell_pct-value", "id_alc-value"} <= set(links)
    for target in links:
        assert f'id="{target}"' in page, target  # each link leads to a field on the page
    # The summary comes before the form's fields, and is what the focus script moves to.
    assert page.index("data-error-summary") < page.index('name="collected_date"')
    assert not LabResult.objects.exists()


def test_a_sample_form_without_errors_has_no_summary(clinician_client, infused_patient):
    page = clinician_client.get("/patients/CT-0001/samples/add/").content.decode()
    assert "error-summary" not in page


def test_each_analyte_row_names_its_value_unit_and_qualifier_cells(
    clinician_client, infused_patient
):
    page = clinician_client.get("/patients/CT-0001/samples/add/").content.decode()

    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S) if "-value" in r]
    assert len(rows) == len(units.ANALYTES)
    for row in rows:
        labels = re.findall(r'<td class="(\w+)"(?: data-label="([^"]*)")?', row)
        assert labels == [
            ("analyte", ""),
            ("specimen", "Specimen"),
            ("value", "Value"),
            ("unit", "Unit"),
            ("qualifier", "or qualifier"),
        ]
