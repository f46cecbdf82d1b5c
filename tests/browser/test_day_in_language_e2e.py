"""The day of a hematologist in German and in Chinese (issue 23, item 8): a de-DE or zh-CN browser
on a phone (390 px), by keyboard only: the worklist, the patient, a sample typed with a decimal
comma in German, the alert it raised, acknowledged and closed, with axe-core on every state.

The steps find their way by addresses, names and test ids, never by English words, so they hold
in any language. The assertions on translated words are marked TRANSLATION: they use the clinical
terms of the brief (CLINICAL.md) and pass once the catalogues of the translation branches are in.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from monitoring.models import Alert
from patients import units
from patients.models import LabResult, PreemptiveTherapy
from tests.browser.steps import check_page, expect_worklist, sign_in_by_keyboard, tab_to
from tests.factories import BERLIN

pytestmark = pytest.mark.browser

# The number as a clinician there types it, and the translated words the day must show.
LOCALES = {
    "de-DE": {
        "value": "12,5",
        # TRANSLATION: monitoring's de catalogue (alerts branch).
        "title": "B-Zell-Regeneration",
        "recommendation": "präemptive",
        "acknowledged": "Quittiert",
        "closed": "Abgeschlossen",
        "html_lang": "de",
    },
    "zh-CN": {
        "value": "12.5",
        # TRANSLATION: monitoring's zh_Hans catalogue (alerts branch).
        "title": "早期再生",
        "recommendation": "抢先治疗",
        "acknowledged": "已确认",
        "closed": "已关闭",
        "html_lang": "zh-hans",
    },
}


def translated(locator):
    """TRANSLATION: an assertion on translated words (passes once the catalogues are merged)."""
    return expect(locator)


@pytest.mark.parametrize("locale", ["de-DE", "zh-CN"])
def test_the_day_of_a_hematologist_by_keyboard_on_a_phone(
    open_tab, clinician, patient_on_day_19, locale
):
    words = LOCALES[locale]
    page = open_tab(locale=locale, viewport={"width": 390, "height": 844})
    keyboard = page.keyboard

    def check(state: str) -> None:
        check_page(page, f"{locale} {state}")

    # Sign in by keyboard: the browser's language decides the interface's.
    sign_in_by_keyboard(page, clinician.username)
    # TRANSLATION: the root templates' catalogue (i18n-core branch) sets <html lang>.
    translated(page.locator("html")).to_have_attribute("lang", words["html_lang"])

    # 1. The worklist: CT-0077 is in its window, a count due, no high alert open.
    expect_worklist(page, in_window="CT-0077", due=1, high=0)
    window = page.get_by_test_id("worklist-window")
    check("the worklist")

    # 2. The patient.
    tab_to(page, window.get_by_role("link", name="CT-0077"))
    keyboard.press("Enter")
    page.wait_for_url("**/patients/CT-0077/")
    expect(page.get_by_test_id("patient-status")).to_contain_text("19")
    check("the patient page")

    # 3. A sample by keyboard: the date typed in the locale's order, the count with its comma.
    tab_to(page, page.locator("a[href$='/patients/CT-0077/samples/add/']").first)
    keyboard.press("Enter")
    page.wait_for_url("**/samples/add/")
    check("the sample form")
    # On a phone the unit and the qualifier sit under the value, inside the window.
    for name in ("pb_bcell_abs-value", "pb_bcell_abs-unit", "pb_bcell_abs-qualifier"):
        box = page.locator(f"[name='{name}']").bounding_box()
        assert box and 0 <= box["x"] and box["x"] + box["width"] <= 390, (name, box)
    # The date field is reached by Tab; its parts' order is the browser's own (not the page's
    # language), so the value is set as the field's ISO value rather than typed digit by digit.
    date_field = page.locator("[name=collected_date]")
    tab_to(page, date_field)
    date_field.fill("2025-03-20")
    tab_to(page, page.locator("[name=collected_time]"))
    page.locator("[name=collected_time]").fill("07:30")
    tab_to(page, page.locator("[name='pb_bcell_abs-value']"))
    keyboard.type(words["value"])
    keyboard.press("Enter")
    page.wait_for_url("**/patients/CT-0077/")
    (saved,) = LabResult.objects.filter(
        patient=patient_on_day_19, analyte=units.PB_BCELL_ABS, value__isnull=False
    )
    assert saved.value == Decimal("12.5")
    assert saved.collected_at == datetime(2025, 3, 20, 7, 30, tzinfo=BERLIN)

    # 4. The message has the focus and links to the alert the sample raised.
    message = page.get_by_role("status").first
    expect(message).to_be_focused()
    alert = Alert.objects.get(patient=patient_on_day_19, rule="early_regeneration")
    link = message.locator(f"a[href='{alert.get_absolute_url()}']")
    translated(link).to_contain_text(words["title"])
    check("the patient page after the save")
    tab_to(page, link)
    keyboard.press("Enter")
    page.wait_for_url(f"**{alert.get_absolute_url()}")

    # 5. The alert page opens with the value, its day and the previous count, above the form.
    facts = page.get_by_test_id("key-facts")
    expect(facts.get_by_test_id("trigger-value")).to_contain_text(re.compile(r"12[.,]5"))
    expect(facts.get_by_test_id("trigger-day")).to_contain_text("19")
    expect(facts.get_by_test_id("previous-count")).to_contain_text("7")
    assert facts.bounding_box()["y"] < page.locator("#close").bounding_box()["y"]
    translated(page.get_by_role("heading", level=1)).to_contain_text(words["title"])
    translated(page.get_by_test_id("recommendation")).to_contain_text(words["recommendation"])
    check("the alert page")

    # 6. Acknowledge: the close form's heading has the focus.
    tab_to(page, page.locator("form[action$='/acknowledge/'] button"))
    keyboard.press("Enter")
    expect(page.locator("#close-title")).to_be_focused()
    alert.refresh_from_db()
    assert alert.status == "acknowledged"
    translated(page.get_by_test_id("alert-status")).to_have_text(words["acknowledged"])
    check("the alert page after Acknowledge")

    # 7. Close without an outcome: one summary of the errors takes the focus; its link leads to
    # the outcome's first choice.
    close_button = page.locator("form.close-form button[type=submit]")
    tab_to(page, close_button)
    keyboard.press("Enter")
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    check("the close form with an error")
    keyboard.press("Tab")
    expect(summary.locator("a").first).to_be_focused()
    keyboard.press("Enter")
    outcome = page.locator("input[name=outcome]:focus")
    expect(outcome).to_have_count(1)
    # Arrow keys move through a radio group and choose as they go.
    for _ in range(10):
        if page.locator("input[name=outcome][value=anti_leukemic]").is_checked():
            break
        keyboard.press("ArrowDown")
    expect(page.locator("input[name=outcome][value=anti_leukemic]")).to_be_checked()
    tab_to(page, page.locator("[name=start_date]"))
    page.locator("[name=start_date]").fill("2025-03-20")
    tab_to(page, page.locator("[name=agent]"))
    for _ in range(10):
        if page.locator("[name=agent]").input_value() == "chemotherapy":
            break
        keyboard.press("ArrowDown")
    tab_to(page, close_button)
    keyboard.press("Enter")
    expect(page.locator("form.close-form")).to_have_count(0)  # closed: no form left
    translated(page.get_by_test_id("alert-status")).to_have_text(words["closed"])
    alert.refresh_from_db()
    therapy = PreemptiveTherapy.objects.get(patient=patient_on_day_19)
    assert (alert.status, alert.outcome, alert.therapy_id) == (
        "closed",
        "anti_leukemic",
        therapy.pk,
    )
    assert (therapy.agent, therapy.start_date) == ("chemotherapy", date(2025, 3, 20))
    check("the closed alert")

    # 8. Back on the worklist: no high alert open, the count no longer due.
    tab_to(page, page.locator(".topbar a[href='/']").first)
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"://[^/]+/$"))
    expect_worklist(page, due=0, high=0)
    check("the worklist at the end of the day")
