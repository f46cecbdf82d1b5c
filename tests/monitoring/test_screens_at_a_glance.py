"""The day's screens at a glance (issue 23, item 6): the alert page opens with the value that
raised the alert, its day and the count before it, above the close form; unacknowledged high
alerts stand apart on the worklist, in words and not by colour alone; a form sent back with
errors lists them all at its top, each linked to its field."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from monitoring.models import Alert
from patients import units
from tests.monitoring.test_inbox import stored_alert
from tests.monitoring.test_worklist import section

pytestmark = pytest.mark.usefixtures("frozen_now")

REGENERATION_EVIDENCE = [
    {"role": "aplasia", "day": 7, "date": "2025-03-08", "analyte": units.PB_BCELL_ABS,
     "value": None, "unit": units.CELLS_PER_UL, "qualifier": units.UNDETECTABLE},
    {"role": "aplasia", "day": 7, "date": "2025-03-08", "analyte": units.ALC,
     "value": "1.2", "unit": units.GIGA_PER_L, "qualifier": ""},
    {"role": "regeneration", "day": 30, "date": "2025-03-31", "analyte": units.ALC,
     "value": "1.4", "unit": units.GIGA_PER_L, "qualifier": ""},
    {"role": "regeneration", "day": 30, "date": "2025-03-31", "analyte": units.PB_BCELL_ABS,
     "value": "12.500000", "unit": units.CELLS_PER_UL, "qualifier": ""},
]  # fmt: skip


def key_facts(html: str) -> str:
    found = re.search(r'<dl class="key-facts" data-testid="key-facts">(.*?)</dl>', html, re.S)
    assert found, "no key facts on the alert page"
    return found.group(1)


def text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def test_the_alert_page_opens_with_the_count_its_day_and_the_count_before_above_the_form(
    clinician_client, center
):
    alert = stored_alert("CT-0001", center=center)
    Alert.objects.filter(pk=alert.pk).update(evidence=REGENERATION_EVIDENCE)

    html = clinician_client.get(reverse("monitoring:alert", args=[alert.pk])).content.decode()

    facts = key_facts(html)
    trigger = re.search(r'data-testid="trigger-value">(.*?)</dd>', facts, re.S).group(1)
    # The B-cell count, not the lymphocytes collected with it; trailing zeros dropped.
    assert text(trigger).startswith("12.5 ")
    assert text(trigger) == "12.5 cells/µL PB B cells (CD19+), absolute"
    day = re.search(r'data-testid="trigger-day">(.*?)</dd>', facts, re.S).group(1)
    assert text(day) == "day 30 · 31 Mar 2025"
    previous = re.search(r'data-testid="previous-count">(.*?)</dd>', facts, re.S).group(1)
    assert text(previous) == "Undetectable · day 7 · 8 Mar 2025"
    # Read before the buttons: the facts come first in the page.
    assert html.index('data-testid="key-facts"') < html.index('id="close"')


def test_an_alert_without_an_earlier_count_says_so_and_one_without_results_shows_none(
    clinician_client, center
):
    first = stored_alert("CT-0001", center=center)
    Alert.objects.filter(pk=first.pk).update(evidence=REGENERATION_EVIDENCE[3:])
    bare = stored_alert("CT-0002", center=center, severity="reminder", rule="bcell_count_due")

    html = clinician_client.get(reverse("monitoring:alert", args=[first.pk])).content.decode()
    previous = re.search(r'data-testid="previous-count">(.*?)</dd>', key_facts(html), re.S)
    assert text(previous.group(1)) == "none"

    html = clinician_client.get(reverse("monitoring:alert", args=[bare.pk])).content.decode()
    assert 'data-testid="key-facts"' not in html


def test_an_unacknowledged_high_alert_is_marked_apart_in_words_on_the_worklist(
    clinician_client, center, clinician
):
    stored_alert("CT-0001", center=center, days_ago=1)
    stored_alert(
        "CT-0002", center=center, days_ago=2, status="acknowledged", acknowledged_by=clinician
    )

    high = section(clinician_client.get("/").content.decode(), "worklist-high")

    cards = re.findall(r"<article.*?</article>", high, re.S)
    assert len(cards) == 2
    new, seen = cards
    assert "CT-0001" in new and "CT-0002" in seen
    assert 'data-testid="unacknowledged-high"' in new and "unacknowledged" in new
    tag = re.search(r'<span class="tag unacknowledged-tag">(.*?)</span>', new).group(1)
    assert tag == "not acknowledged"  # in words, not by colour alone
    assert "unacknowledged" not in seen


def test_a_close_form_sent_back_lists_its_errors_at_the_top_with_links_to_the_fields(
    clinician_client, center
):
    alert = stored_alert("CT-0001", center=center)

    response = clinician_client.post(reverse("monitoring:close", args=[alert.pk]), {})

    html = response.content.decode()
    summary = re.search(r"<div class=\"error-summary\".*?</div>", html, re.S)
    assert summary, "no error summary"
    assert "data-error-summary" in summary.group(0) and 'role="alert"' in summary.group(0)
    links = re.findall(r'<a href="#([^"]+)">([^<]*)</a>', summary.group(0))
    assert links and links[0][0] == "id_outcome"
    assert 'id="id_outcome"' in html  # the link leads somewhere
    # The summary sits at the top of the form, before its first field.
    assert html.index("error-summary") < html.index('name="outcome"')
