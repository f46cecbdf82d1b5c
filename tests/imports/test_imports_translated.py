"""Issue 23: the imports' own words in the reader's language. A spreadsheet's problems are
stored with their codes by the background job and put into words when the page is read, so a
German and a Chinese data manager each read them in their language (and the English default
stays as it was); held results' reasons and states likewise; machine texts stay English."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils import translation

from imports.held import held_results_retry
from imports.models import HeldResult, SpreadsheetUpload
from imports.problems import problem_text
from tests.imports.test_held_results import _hold
from tests.imports.test_spreadsheet_upload import GOOD_LABS, manager, post_file, workbook

__all__ = ["manager"]  # the fixture, used by name


@pytest.fixture(autouse=True)
def _default_language_after():
    """A request leaves its language active in the thread (LocaleMiddleware does not reset it):
    the next test in this worker starts in the default language again."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


BAD = GOOD_LABS + [
    ["CT-XL1", "2025-04-09 08:30", "pb_bcell_abs", 3, "% cells", None],  # a bad unit
    ["CT-XL1", "yesterday", "alc", 1, "10^9/L", None],  # a bad date
    ["CT-XL1", "02/11/2025 08:30", "alc", 1, "10^9/L", None],  # day or month first?
]


def _upload_bad(client, **headers):
    return post_file_with(client, headers)


def post_file_with(client, headers):
    client.defaults.update(headers)
    try:
        return post_file(client, "history.xlsx", workbook(BAD))
    finally:
        for key in headers:
            client.defaults.pop(key)


def _problems(page) -> dict:
    rows = page.context["preview"]["problems"]
    return {(p["row"], p["column"]): p["message"] for p in rows}


def test_a_german_user_reads_the_spreadsheet_problems_in_german(manager, clinician):
    clinician.profile.language = "de"
    clinician.profile.save()
    page = _upload_bad(manager)
    problems = _problems(page)
    assert problems[(6, "collected_at")] == (
        "Nicht lesbar: schreiben Sie den Zeitpunkt als JJJJ-MM-TT HH:MM (YYYY-MM-DD HH:MM) "
        "oder TT.MM.JJJJ HH:MM."
    )
    assert "kann der 2. November oder der 11. Februar sein" in problems[(7, "collected_at")]
    # The bad unit is found by the clinical checks (patients), whose words the job writes in
    # the uploader's language: the row and column are the spreadsheet's, the value as typed.
    assert (5, "unit") in problems
    text = page.content.decode()
    assert "Nicht lesbar: schreiben Sie den Zeitpunkt" in text
    assert "Cannot read it" not in text
    # Stored with its code: the same upload read in English is English again.
    upload = SpreadsheetUpload.objects.get()
    stored = next(p for p in upload.preview["problems"] if p["row"] == 6)
    assert stored["code"] == "cannot_read"
    assert stored["message"].startswith("Cannot read it: write the time as YYYY-MM-DD HH:MM")
    with translation.override("en-gb"):
        assert problem_text(stored) == stored["message"]


def test_a_chinese_browser_reads_the_spreadsheet_problems_in_chinese(manager):
    page = _upload_bad(manager, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    problems = _problems(page)
    assert problems[(6, "collected_at")] == (
        "无法读取：请将时间写作 YYYY-MM-DD HH:MM（年-月-日 时:分）或 DD.MM.YYYY HH:MM。"
    )
    assert "可能是十一月2日，也可能是二月11日" in problems[(7, "collected_at")]
    assert (5, "unit") in problems
    assert "无法读取：请将时间写作" in page.content.decode()


def test_the_default_language_keeps_the_english_problems(manager):
    problems = _problems(_upload_bad(manager))
    assert problems[(6, "collected_at")] == (
        "Cannot read it: write the time as YYYY-MM-DD HH:MM (or DD.MM.YYYY HH:MM)."
    )
    assert "could be 2 November or 11 February" in problems[(7, "collected_at")]
    assert "is not a unit of PB B cells" in problems[(5, "unit")]


def test_a_problem_stored_before_problems_had_codes_is_shown_as_written(manager, clinician):
    clinician.profile.language = "de"
    clinician.profile.save()
    upload = SpreadsheetUpload.objects.create(
        user=clinician,
        file_name="old.xlsx",
        file_hash="0" * 64,
        status="refused",
        preview={
            "problems": [
                {
                    "sheet": "labs",
                    "row": 4,
                    "column": "unit",
                    "value": "mg/dL",
                    "message": "Cannot read it: an old text.",
                }
            ],
            "notices": ["labs: an old notice."],
        },
    )
    page = manager.get(f"/imports/{upload.pk}/")
    assert page.status_code == 200
    assert page.context["preview"]["problems"][0]["message"] == "Cannot read it: an old text."
    assert page.context["preview"]["notices"] == ["labs: an old notice."]


def test_held_results_reasons_and_states_are_shown_in_the_readers_language(
    manager, clinician, center
):
    _hold(center, reason_text="No patient with MRN 4711.")  # kept before reasons had codes
    assert held_results_retry(center=center).still_held == 1  # re-placed: now with its code
    held = HeldResult.objects.get()
    assert held.reason_detail["code"] == "held_unknown_patient"
    # English stays what the laboratory system is told (HL7 ERR) and the stored text.
    assert held.reason_text == (
        f"No patient with MRN '4711' at {center.name}: register the patient (the result is "
        "imported then)."
    )

    clinician.profile.language = "de"
    clinician.profile.save()
    german = manager.get("/imports/held/").content.decode()
    assert f"Kein Patient mit MRN &#x27;4711&#x27; in {center.name}" in german
    assert "Unbekannter Patient" in german

    clinician.profile.language = "zh-hans"
    clinician.profile.save()
    chinese = manager.get("/imports/held/").content.decode()
    assert f"{center.name} 没有病历号为 &#x27;4711&#x27; 的患者" in chinese
    assert "未知患者" in chinese

    clinician.profile.language = ""
    clinician.profile.save()
    english = manager.get("/imports/held/").content.decode()
    assert "No patient with MRN &#x27;4711&#x27;" in english


def test_a_held_result_kept_before_reasons_had_codes_shows_its_stored_text(
    manager, clinician, center
):
    _hold(center, reason_text="No patient with MRN 4711.")
    clinician.profile.language = "de"
    clinician.profile.save()
    page = manager.get("/imports/held/").content.decode()
    assert "No patient with MRN 4711." in page
    assert "Unbekannter Patient" in page


def test_the_template_guide_describes_the_columns_in_the_downloaders_language(manager):
    import io

    import openpyxl

    response = manager.get("/imports/template.xlsx", HTTP_ACCEPT_LANGUAGE="de")
    guide = openpyxl.load_workbook(io.BytesIO(response.content))["guide"]
    rows = {(r[0], r[1]): r[4] for r in guide.iter_rows(min_row=2, values_only=True)}
    assert rows[("infusions", "infusion_date")] == "Tag 0"
    assert rows[("labs", "analyte")].startswith("pb_bcell_abs")  # codes stay as they are
    # the sheets and columns are the file's own names, never translated
    assert [c.value for c in guide[1]] == ["sheet", "column", "required", "type", "meaning"]
