"""Alerts and their e-mails in the reader's language (issue 23, items 1 and 2).

The stored alert keeps its English wording (the record, the API, the analyses); its page shows the
title, recommendation, study finding, definition and reasons in the active language, derived from
the rule and the values the alert stored (numbers and units as they are), and each e-mail is
composed in its recipient's language (ClinicianProfile.language, empty: settings.LANGUAGE_CODE).

The alert: infused on 1 March 2025, B-cell aplasia on day 7, B cells back (12.75 cells/µL) on day
30, a result that arrived on day 38: 8 days late.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import translation

from monitoring import notifications, texts
from monitoring.models import Alert, AlertEscalation, CenterAlerting, Notification
from monitoring.params import definition_words
from patients.models import ClinicianProfile
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory
from tests.monitoring.test_webhook import SECRET, Receiver

INFUSED = date(2025, 3, 1)
COUNT = Decimal("12.75")

GERMAN_TITLE = "Frühe B-Zell-Regeneration"
GERMAN_RECOMMENDATION = (
    "B-Zellen im peripheren Blut sind an Tag 30 nach der Infusion wieder aufgetreten, innerhalb "
    "des 45-Tage-Fensters und nach B-Zell-Aplasie"
)
CHINESE_TITLE = "B细胞早期再生"
CHINESE_RECOMMENDATION = "外周血B细胞在B细胞缺失之后于输注后第 30 天重新出现，处于 45 天窗口内"
ENGLISH_RECOMMENDATION = (
    "Peripheral-blood B cells reappeared on day 30 after infusion, within the 45-day window"
)


def on_day(day: int, hour: int = 8) -> datetime:
    return datetime.combine(INFUSED + timedelta(days=day), time(hour), tzinfo=BERLIN)


def count(patient, day: int, value, *, arrives: int) -> None:
    with time_machine.travel(on_day(arrives, 14), tick=False):
        lab_results_record(
            patient=patient,
            collected_at=on_day(day),
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )


def speaking(username: str, center, language: str):
    user = UserFactory(username=username, center=center, email=f"{username}@example.org")
    ClinicianProfile.objects.filter(user=user).update(language=language)
    return user


@pytest.fixture(autouse=True)
def sixty_days(settings):
    settings.ALERT_STALE_AFTER_DAYS = 60


@pytest.fixture
def german(center):
    return speaking("hanna", center, "de")


@pytest.fixture
def chinese(center):
    return speaking("li", center, "zh-hans")


@pytest.fixture
def patient(center, clinician, german, chinese):
    """Three responsible hematologists: English (no choice), German and Chinese."""
    patient = PatientFactory(center=center, study_id="CT-0723", full_name="Erika Mustermann")
    patient.hematologists.add(clinician, german, chinese)
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    return patient


@pytest.fixture
def alert(patient, django_capture_on_commit_callbacks) -> Alert:
    with django_capture_on_commit_callbacks(execute=False):
        count(patient, 7, None, arrives=7)
        # Entered by someone reading German: the record is English all the same.
        with translation.override("de"):
            count(patient, 30, COUNT, arrives=38)
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def mails_by_recipient(mailoutbox, alert) -> dict[str, object]:
    for note in Notification.objects.filter(alert=alert, channel="email"):
        notifications.notification_send(note.pk)
    return {mail.to[0]: mail for mail in mailoutbox}


def test_the_stored_alert_keeps_its_english_wording(alert):
    assert alert.title == "Early B-cell regeneration"
    assert alert.details["recommendation"].startswith(ENGLISH_RECOMMENDATION)
    assert alert.details["study_finding"].startswith("Reference cohort: 55 patients")
    assert alert.details["definition"].startswith("PB B cells count as detectable above 0")
    assert alert.late_days == 8


def test_each_recipient_reads_the_email_in_their_own_language(
    alert, clinician, german, chinese, mailoutbox
):
    mails = mails_by_recipient(mailoutbox, alert)
    de, zh, en = mails[german.email], mails[chinese.email], mails[clinician.email]

    assert de.subject == f"[CARTtrack] Hoch: CT-0723 — {GERMAN_TITLE}"
    assert "Für den Studienpatienten CT-0723 wurde eine Meldung der Dringlichkeit „hoch“" in de.body
    assert "Der Befund wurde 8 Tage vor seinem Eingang abgenommen." in de.body
    assert "Bitte prüfen Sie die Meldung und ihre Befunde in CARTtrack:" in de.body
    assert f"/alerts/{alert.pk}/" in de.body

    assert zh.subject == f"[CARTtrack] 高：CT-0723 — {CHINESE_TITLE}"
    assert "研究患者 CT-0723 触发了一条“高”级别警报" in zh.body
    assert "该结果于到达前 8 天采集。" in zh.body
    assert "本消息有意不包含任何患者身份信息或检验数值。" in zh.body

    # No profile language: the site's default, English as before.
    assert en.subject == "[CARTtrack] High: CT-0723 — Early B-cell regeneration"
    assert "The result was collected 8 days before it arrived." in en.body
    for mail in (de, zh, en):
        assert "12.75" not in mail.body and "12,75" not in mail.body  # never a lab value
        assert "Mustermann" not in mail.subject + mail.body


def test_an_escalation_is_sent_again_in_the_recipients_language(alert, german, mailoutbox):
    note = Notification.objects.get(alert=alert, recipient=german)
    note.escalation_step = 2  # as the leads' step records it
    note.save(update_fields=["escalation_step"])
    notifications.notification_send(note.pk)
    (mail,) = mailoutbox
    assert (
        "Erneut gesendet: Niemand hat diese Meldung seit ihrer Auslösung quittiert "
        "(an die Leitung des Zentrums eskaliert)." in mail.body
    )


@pytest.mark.parametrize(
    ("site_language", "title", "late"),
    [
        ("en-gb", "Early B-cell regeneration", "collected 8 days before it arrived"),
        ("de", GERMAN_TITLE, "8 Tage vor seinem Eingang abgenommen"),
    ],
)
def test_the_webhook_speaks_the_sites_language_whatever_is_active(
    alert, center, settings, site_language, title, late
):
    """A paging system has no profile: its human texts are in settings.LANGUAGE_CODE, even when
    the sender runs inside a Chinese request; its fields and codes stay as specified."""
    receiver = Receiver([200])
    try:
        CenterAlerting.objects.create(
            center=center, webhook_url=receiver.url, webhook_secret=SECRET
        )
        settings.LANGUAGE_CODE = site_language
        hook = Notification.objects.create(alert=alert, recipient=None, channel="webhook")
        with translation.override("zh-hans"):
            notifications.notification_send(hook.pk)
    finally:
        receiver.stop()
    ((valid, _, body),) = receiver.received
    assert valid
    assert (body["title"], body["late"], body["severity"]) == (title, late, "high")


@pytest.mark.parametrize(
    ("language", "title", "recommendation", "finding"),
    [
        (
            "de",
            GERMAN_TITLE,
            GERMAN_RECOMMENDATION,
            "Trat eine frühe Regeneration auf, ergab eine präemptive antileukämische Therapie",
        ),
        ("zh-hans", CHINESE_TITLE, CHINESE_RECOMMENDATION, "抗白血病抢先治疗的无复发生存显著优于"),
    ],
)
def test_the_alert_page_in_the_browsers_language(
    alert, clinician_client, language, title, recommendation, finding
):
    page = clinician_client.get(alert.get_absolute_url(), HTTP_ACCEPT_LANGUAGE=language)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"<h1>{title}</h1>" in html
    assert recommendation in html
    assert finding in html
    alert.refresh_from_db()
    assert alert.title == "Early B-cell regeneration"  # shown translated, stored as it was


def test_the_alert_page_in_english_is_unchanged(alert, clinician_client):
    html = clinician_client.get(alert.get_absolute_url()).content.decode()
    assert "<h1>Early B-cell regeneration</h1>" in html
    assert ENGLISH_RECOMMENDATION in html
    assert GERMAN_TITLE not in html


def test_a_definition_and_threshold_are_translated_with_their_numbers(alert):
    alert.details["parameters"]["bcell_pct_threshold"] = "1"
    alert.details["definition"] = texts.english_of(definition_words, alert.details["parameters"])
    with translation.override("de"):
        assert alert.definition_display == (
            "B-Zellen im peripheren Blut gelten über 0 cells/µL oder über 1 % der Lymphozyten "
            "als nachweisbar; eine nachweisbare Probe genügt (Parameter default-1)."
        )
    with translation.override("zh-hans"):
        assert texts.threshold_words("flow", {"mrd_flow_threshold_pct": "0.01"}) == (
            "流式细胞术 ≥ 0.01 % 细胞"
        )


def test_texts_the_rules_do_not_know_are_shown_as_stored(alert):
    alert.title = "Imported: B cells back"
    alert.details["recommendation"] = "An older wording, day 30."
    with translation.override("de"):
        assert alert.title_display == "Imported: B cells back"
        assert alert.recommendation_display == "An older wording, day 30."
        alert.rule = "a_rule_of_another_release"
        assert alert.study_finding_display == alert.details["study_finding"]


def test_stored_reasons_and_notes_are_shown_in_the_readers_language(alert):
    step = AlertEscalation(alert=alert, step=2, created_at=alert.raised_at, recipients=2, note="")
    step.note = texts.ESCALATED_LEADS % {"count": 2}
    with translation.override("de"):
        assert (
            step.note_display
            == "Nicht quittiert: an 2 Mitglieder der Leitung des Zentrums gesendet."
        )
        assert texts.stored_display("Patient declined, day 31.") == "Patient declined, day 31."
    with translation.override("zh-hans"):
        stale = texts.HISTORY_STALE % {"date": "2025-03-31", "days": 61, "limit": 60}
        assert texts.stored_display(stale) == (
            "其日期（2025-03-31）比到达日期早 61 天，超过了将发现视为历史记录的 60 天。"
        )
    event = alert.events.first()
    assert event.reason == "Raised by the rules engine."
    with translation.override("zh-hans"):
        assert event.reason_display == "由规则引擎触发。"


def test_the_preferences_change_the_language_of_the_next_page(clinician_client, clinician, alert):
    page = clinician_client.get("/alerts/preferences/").content.decode()
    assert "The browser&#x27;s language" in page or "The browser's language" in page

    answer = clinician_client.post("/alerts/preferences/", {"language": "de"}, follow=True)
    assert ClinicianProfile.objects.get(user=clinician).language == "de"
    assert "Ihre Einstellungen wurden gespeichert." in answer.content.decode()
    html = clinician_client.get(alert.get_absolute_url()).content.decode()
    assert f"<h1>{GERMAN_TITLE}</h1>" in html

    clinician_client.post("/alerts/preferences/", {"language": "zh-hans"})
    html = clinician_client.get(alert.get_absolute_url()).content.decode()
    assert f"<h1>{CHINESE_TITLE}</h1>" in html

    clinician_client.post("/alerts/preferences/", {"language": ""})  # back to the browser's
    assert ClinicianProfile.objects.get(user=clinician).language == ""
    html = clinician_client.get(alert.get_absolute_url()).content.decode()
    assert "<h1>Early B-cell regeneration</h1>" in html


def test_a_language_not_offered_is_refused_without_saving(clinician_client, clinician):
    answer = clinician_client.post("/alerts/preferences/", {"language": "xx"})
    assert answer.status_code == 200
    assert ClinicianProfile.objects.get(user=clinician).language == ""
    # The opt-out in the same post is not saved either.
    assert ClinicianProfile.objects.get(user=clinician).email_low_severity is True


def test_a_warning_is_named_as_a_word_of_the_sentence(alert, german, mailoutbox):
    Alert.objects.filter(pk=alert.pk).update(severity="warning")
    note = Notification.objects.get(alert=alert, recipient=german)
    notifications.notification_send(note.pk)
    (mail,) = mailoutbox
    assert mail.subject.startswith("[CARTtrack] Warnung: CT-0723")
    assert "eine Meldung der Dringlichkeit „Warnung“ ausgelöst" in mail.body


@pytest.mark.parametrize("language", ["de", "zh_Hans"])
def test_the_monitoring_catalogue_is_complete_and_compiled(language):
    """Every message of the .po translated, none fuzzy, and the committed .mo says the same."""
    import gettext
    import shutil
    import subprocess
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "monitoring" / "locale" / language
    po, mo = folder / "LC_MESSAGES" / "django.po", folder / "LC_MESSAGES" / "django.mo"
    text = po.read_text(encoding="utf-8")
    assert "#, fuzzy" not in text
    if shutil.which("msgfmt"):
        check = subprocess.run(
            ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        assert "untranslated" not in check.stderr and "fuzzy" not in check.stderr
    compiled = gettext.GNUTranslations(mo.open("rb"))
    for message in ("Early B-cell regeneration", "B-cell aplasia not documented"):
        assert compiled.gettext(message) != message
    entries = text.count('\nmsgid "') - 1  # less the header
    assert len(compiled._catalog) - 1 >= entries  # the .mo holds every entry (plurals: more)


@pytest.mark.parametrize(
    ("language", "title", "late", "severity"),
    [
        ("de", GERMAN_TITLE, "8 Tage vor seinem Eingang abgenommen", "Hoch"),
        ("zh-hans", CHINESE_TITLE, "于到达前 8 天采集", "高"),
    ],
)
def test_the_worklist_and_inbox_name_the_alert_in_the_readers_language(
    alert, clinician_client, language, title, late, severity
):
    with time_machine.travel(on_day(40, 9), tick=False):  # inside the window: on the worklist
        worklist = clinician_client.get("/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        inbox = clinician_client.get("/alerts/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert f"CT-0723 — {title}" in worklist
    assert late in worklist
    assert f"<strong>{title}</strong>" in inbox
    assert f">{severity}</span>" in inbox


def test_acknowledging_says_so_in_the_readers_language(alert, clinician_client):
    answer = clinician_client.post(
        f"/alerts/{alert.pk}/acknowledge/", HTTP_ACCEPT_LANGUAGE="de", follow=True
    )
    assert f"Meldung quittiert: CT-0723 — {GERMAN_TITLE}." in answer.content.decode()
    again = clinician_client.post(
        f"/alerts/{alert.pk}/acknowledge/", HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True
    )
    assert "只有待处理的警报才能确认；该警报状态为：已确认。" in again.content.decode()
    assert alert.events.last().reason == ""  # nothing translated was stored
