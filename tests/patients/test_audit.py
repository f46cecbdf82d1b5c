"""The audit trail: every correction keeps who made it, when, and the value before.

A correction of a lab result can withdraw an alert, so the prior value must stay readable
(STYLE.md: every state change writes an audit row with the acting user and old and new values).
"""

import re
from datetime import datetime, timedelta
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from patients import units
from patients.models import LabResult
from tests.conftest import FIXED_NOW
from tests.factories import LabResultFactory

BERLIN = ZoneInfo("Europe/Berlin")
COLLECTED = datetime(2025, 3, 15, 8, 0, tzinfo=BERLIN)

pytestmark = pytest.mark.usefixtures("frozen_now")


def shown_changes(page: str) -> list[tuple[str, str, str]]:
    """(field, before, after) as the history table shows them."""
    pattern = r'<span class="field">(.*?)</span>: <del>(.*?)</del> → <ins>(.*?)</ins>'
    return [tuple(unescape(part) for part in m) for m in re.findall(pattern, page, re.S)]


def history_rows(page: str) -> list[list[str]]:
    table = re.search(
        r'<table class="grid changes" data-testid="history">(.*?)</table>', page, re.S
    )
    assert table, "no history table on the page"
    rows = re.findall(r"<tr><td>(.*?)</tr>", table.group(1), re.S)
    return [
        [
            " ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split())
            for cell in ("<td>" + row).split("</td>")[:-1]
        ]
        for row in rows
    ]


@pytest.fixture
def bcell_count(infused_patient, clinician):
    """An undetectable count entered on day 14, as the lab first reported it."""
    return LabResultFactory(
        patient=infused_patient,
        collected_at=COLLECTED,
        value=None,
        qualifier=units.UNDETECTABLE,
        canonical_value=None,
        entered_by=clinician,
    )


def later(frozen_now, minutes=10):
    # The clock stands still in these tests; each step of the story happens a little later,
    # within the 15-minute idle logoff (which counts from sign-in).
    frozen_now.shift(timedelta(minutes=minutes))


@pytest.fixture
def corrected(clinician_client, bcell_count, frozen_now):
    """Ten minutes after entry, the lab corrects its report: 8 B cells/µL were detectable."""
    later(frozen_now)
    response = clinician_client.post(
        f"/patients/CT-0001/lab/{bcell_count.pk}/edit/",
        {
            "analyte": units.PB_BCELL_ABS,
            "collected_at": "2025-03-15T08:00",
            "value": "8",
            "unit": units.CELLS_PER_UL,
            "qualifier": "",
            "method": "flow cytometry",
        },
    )
    assert response.status_code == 302
    return bcell_count


def test_a_lab_correction_records_who_when_and_the_prior_value(corrected, clinician):
    change = corrected.history.filter(history_type="~").get()
    assert change.history_user == clinician
    assert change.history_date == FIXED_NOW + timedelta(minutes=10)
    assert (change.value, change.qualifier) == (Decimal(8), "")
    before = change.prev_record
    assert (before.value, before.qualifier) == (None, units.UNDETECTABLE)


def test_the_patient_history_page_shows_the_change_before_and_after(clinician_client, corrected):
    page = clinician_client.get("/patients/CT-0001/history/").content.decode()
    (changed,) = [row for row in history_rows(page) if row[3] == "changed"]
    when, who, record, _action, _diff = changed
    assert when == "3 Nov 2025 11:10"  # FIXED_NOW + 10 minutes, shown in Berlin time
    assert who == "clinician"
    assert record.startswith("PB B cells (CD19+), absolute")
    changes = {field: (before, after) for field, before, after in shown_changes(page)}
    before, after = changes["value"]
    assert before == "—"
    assert Decimal(after) == Decimal(8)
    assert changes["qualifier"] == ("undetectable", "—")
    assert "method" in changes


def test_the_records_own_history_page_shows_its_change(clinician_client, corrected):
    page = clinician_client.get(f"/patients/CT-0001/lab/{corrected.pk}/history/")
    assert page.status_code == 200
    rows = history_rows(page.content.decode())
    assert [row[3] for row in rows] == ["changed", "created"]
    assert ("qualifier", "undetectable", "—") in shown_changes(page.content.decode())


def test_the_patient_page_lists_the_correction_among_recent_changes(clinician_client, corrected):
    page = clinician_client.get("/patients/CT-0001/").content.decode()
    assert ("qualifier", "undetectable", "—") in shown_changes(page)


def test_a_second_correction_shows_the_first_correction_as_its_before(
    clinician_client, corrected, frozen_now
):
    later(frozen_now, minutes=10)  # within the 15-minute idle logoff
    clinician_client.post(
        f"/patients/CT-0001/lab/{corrected.pk}/edit/",
        {
            "analyte": units.PB_BCELL_ABS,
            "collected_at": "2025-03-15T08:00",
            "value": "11",
            "unit": units.CELLS_PER_UL,
            "qualifier": "",
            "method": "flow cytometry",
        },
    )
    page = clinician_client.get(f"/patients/CT-0001/lab/{corrected.pk}/history/")
    values = [(b, a) for field, b, a in shown_changes(page.content.decode()) if field == "value"]
    newest_before, newest_after = values[0]
    assert (Decimal(newest_before), Decimal(newest_after)) == (Decimal(8), Decimal(11))


def test_a_deleted_lab_result_keeps_its_history(clinician_client, clinician, corrected, frozen_now):
    later(frozen_now, minutes=10)  # within the 15-minute idle logoff
    response = clinician_client.post(f"/patients/CT-0001/lab/{corrected.pk}/delete/")
    assert response.status_code == 302
    assert not LabResult.objects.filter(pk=corrected.pk).exists()
    kept = LabResult.history.filter(id=corrected.pk).order_by("history_date", "history_id")
    assert [row.history_type for row in kept] == ["+", "~", "-"]
    assert kept.last().history_user == clinician
    assert kept.last().value == Decimal(8)  # what was deleted stays readable

    page = clinician_client.get(f"/patients/CT-0001/lab/{corrected.pk}/history/")
    assert page.status_code == 200
    rows = history_rows(page.content.decode())
    assert [row[3] for row in rows] == ["deleted", "changed", "created"]
    assert rows[0][1] == "clinician"
    patient_page = clinician_client.get("/patients/CT-0001/history/").content.decode()
    assert "deleted" in [row[3] for row in history_rows(patient_page)]


def test_a_deleted_infusion_keeps_its_history(clinician_client, clinician, infusion, frozen_now):
    later(frozen_now)
    clinician_client.post(f"/patients/CT-0001/infusion/{infusion.pk}/delete/")
    rows = history_rows(
        clinician_client.get(f"/patients/CT-0001/infusion/{infusion.pk}/history/").content.decode()
    )
    assert [row[3] for row in rows] == ["deleted", "created"]
    assert "infusion 1 (1 Mar 2025)" in rows[0][2]


def test_the_history_names_a_result_by_its_collection_date_in_the_centers_time_zone(
    clinician_client, infused_patient
):
    # 00:30 on 15 March in Berlin is still 14 March in UTC; the labs table says 15 Mar, and the
    # history must name the same day, or a reviewer looks for the wrong sample.
    LabResultFactory(
        patient=infused_patient, collected_at=datetime(2025, 3, 15, 0, 30, tzinfo=BERLIN)
    )
    page = clinician_client.get("/patients/CT-0001/history/").content.decode()
    (created,) = [row for row in history_rows(page) if row[2].startswith("PB B cells")]
    assert created[2].endswith("(15 Mar 2025)")
