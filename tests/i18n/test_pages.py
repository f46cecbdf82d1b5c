"""The pages in the reader's language (issue 23): the browser's Accept-Language, or the language
a user chose in their profile, which wins. English (en-gb) stays the default and unchanged."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from tests.factories import InfusionFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def infused(center):
    patient = PatientFactory(center=center, study_id="CT-0042")
    InfusionFactory(patient=patient, infusion_date=date(2026, 11, 2), infusion_number=1)
    return patient


def page(client, url, language=None):
    headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
    response = client.get(url, **headers)
    assert response.status_code == 200
    return response.content.decode()


def test_the_login_page_in_german_and_chinese(client):
    german = page(client, reverse("login"), "de-DE,de;q=0.9")
    assert '<html lang="de">' in german
    assert "<h1>Anmelden</h1>" in german
    assert "Passwort vergessen?" in german
    chinese = page(client, reverse("login"), "zh-CN,zh;q=0.9")
    assert '<html lang="zh-hans">' in chinese
    assert "<h1>登录</h1>" in chinese
    assert "忘记密码？" in chinese


def test_the_login_page_stays_english_by_default(client):
    english = page(client, reverse("login"))
    assert '<html lang="en-gb">' in english
    assert "<h1>Sign in</h1>" in english
    assert "Anmelden" not in english


def test_a_german_clinician_sees_the_navigation_the_patient_list_and_german_dates(
    clinician_client, infused
):
    html = page(clinician_client, reverse("patients:list"), "de")
    assert ">Heute<" in html  # the navigation (carttrack/context_processors.py)
    assert ">Patienten<" in html
    assert ">Abmelden<" in html
    assert "Letzte periphere B-Zell-Zahl" in html
    assert "2. November 2026" in html
    assert "2 Nov 2026" not in html


def test_a_chinese_clinician_sees_the_patient_list_in_chinese_with_chinese_dates(
    clinician_client, infused
):
    html = page(clinician_client, reverse("patients:list"), "zh-CN")
    assert ">今日<" in html
    assert ">患者<" in html
    assert "研究编号" in html
    assert "2026年11月2日" in html


def test_english_dates_keep_their_look(clinician_client, infused):
    html = page(clinician_client, reverse("patients:list"), "en-GB")
    assert "2 Nov 2026" in html
    assert ">Today<" in html
    assert "Study ID" in html


def test_the_profile_language_wins_over_the_browser(clinician_client, clinician, infused):
    clinician.profile.language = "de"
    clinician.profile.save()
    html = page(clinician_client, reverse("patients:list"), "zh-CN,zh;q=0.9")
    assert '<html lang="de">' in html
    assert "2. November 2026" in html
    assert "Neuer Patient" in html or "Studien-ID" in html
    assert "研究编号" not in html


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en-gb", "2 Nov 2026"), ("de", "2. November 2026"), ("zh-hans", "2026年11月2日")],
)
def test_human_date_follows_the_active_language(language, expected):
    from django.utils import translation

    from patients.templatetags.clinical import human_date_filter

    with translation.override(language):
        assert human_date_filter(date(2026, 11, 2)) == expected
        assert human_date_filter("2026-11-02") == expected
        assert human_date_filter(None) == "—"


@pytest.mark.parametrize(
    ("language", "expected"), [("en-gb", "0.9"), ("de", "0,9"), ("zh-hans", "0.9")]
)
def test_numbers_are_shown_with_the_language_decimal_separator(language, expected):
    from django.utils import translation

    from analytics.templatetags.analytics_tags import num

    with translation.override(language):
        assert num(0.9) == expected
