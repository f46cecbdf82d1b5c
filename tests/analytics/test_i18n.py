"""The survival dashboard in German and Chinese (issue 23): figures' titles, axes, legends and
hover texts, the data dictionary, the publication tables and the refresh run in the reader's
language; numbers and every download (CSV, Markdown) the same bytes in every language."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from accounts.views import SignInCodeForm
from analytics import services
from analytics.figure_texts import TEXTS_KEY, FigureTexts, localized
from analytics.models import RUNNING, DashboardSnapshot, RefreshRun
from audit.models import AccessEvent
from patients.models import ClinicianProfile
from tests.analytics.test_snapshot import small_study

pytestmark = pytest.mark.django_db

ZH_BROWSER = "zh-CN,zh;q=0.9"  # a Chinese browser: Django falls back to zh-hans


@pytest.fixture
def study(frozen_now, settings):
    settings.SMALL_CELL_MIN = 1  # every curve drawn (suppression: tests/analytics/test_disclosure)
    return small_study()


@pytest.fixture
def snapshot(study) -> DashboardSnapshot:
    return services.snapshot_compute(options={})


def _german(user) -> None:
    ClinicianProfile.objects.update_or_create(user=user, defaults={"language": "de"})


def _figures(client, **headers) -> tuple[str, dict]:
    page = client.get("/dashboard/", **headers).content.decode()
    url = re.search(r'data-figures-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    response = client.get(url, **headers)
    assert response.status_code == 200
    return url, response.json()


def _numbers(figure: dict) -> list:
    """Every trace's numbers (an at-risk row's y is its label: its counts are its text)."""
    return [
        (t.get("x"), t.get("text") if t.get("mode") == "text" else t.get("y"), t.get("customdata"))
        for t in figure["data"]
    ]


def test_a_german_user_sees_the_figures_in_german(clinician, clinician_client, snapshot):
    _, english = _figures(clinician_client)
    _german(clinician)
    url, german = _figures(clinician_client)

    assert url.endswith("?lang=de")  # the browser keeps each language under its own URL
    rfs = german["rfs"]["layout"]
    assert rfs["title"]["text"] == "Rezidivfreies Überleben, Patienten in CR"
    assert rfs["yaxis"]["title"]["text"] == "Rezidivfrei"
    assert rfs["yaxis2"]["title"]["text"] == "Unter Risiko"
    assert rfs["xaxis2"]["title"]["text"] == "Tage nach der ersten Infusion"
    assert german["os"]["layout"]["title"]["text"] == "Gesamtüberleben, Patienten in CR"
    cir = german["cir"]
    assert cir["layout"]["title"]["text"] == (
        "Kumulative Inzidenz des Rezidivs (konkurrierendes Risiko: Tod)"
    )
    assert cir["layout"]["yaxis"]["title"]["text"] == "Kumulative Inzidenz"
    assert {t.get("name") for t in cir["data"]} >= {"Rezidiv", "Tod ohne Rezidiv"}
    by_regen = german["rfs_by_early_regeneration"]
    names = [t["name"] for t in by_regen["data"] if t.get("showlegend") is not False]
    assert any(n.startswith("frühe B-Zell-Regeneration (n=") for n in names), names
    assert any(n.startswith("keine frühe B-Zell-Regeneration (n=") for n in names), names
    hovers = [t.get("hovertemplate", "") for t in by_regen["data"]]
    assert any("Tag %{x:.0f}<br>Rezidivfrei %{y:.3f}<br>unter Risiko" in h for h in hovers)
    # The at-risk row's labels are translated with the curves they belong to.
    risk_rows = [t for t in by_regen["data"] if t.get("mode") == "text"]
    assert risk_rows[0]["y"][0] == "frühe B-Zell-Regeneration"
    # The recorded texts are not sent, and the numbers are the stored ones in every language.
    assert TEXTS_KEY not in german["rfs"]
    assert all(_numbers(german[name]) == _numbers(english[name]) for name in english)
    assert english["rfs"]["layout"]["title"]["text"] == "Relapse-free survival, CR patients"


def test_a_chinese_browser_sees_the_figures_in_chinese(clinician_client, snapshot):
    url, chinese = _figures(clinician_client, HTTP_ACCEPT_LANGUAGE=ZH_BROWSER)

    assert url.endswith("?lang=zh-hans")
    assert chinese["rfs"]["layout"]["title"]["text"] == "无复发生存，CR患者"
    assert chinese["rfs"]["layout"]["yaxis"]["title"]["text"] == "无复发"
    assert chinese["rfs"]["layout"]["xaxis2"]["title"]["text"] == "首次输注后天数"
    assert chinese["cir"]["layout"]["yaxis"]["title"]["text"] == "累积发生率"
    assert chinese["cir"]["layout"]["title"]["text"] == "复发的累积发生率（竞争风险：死亡）"
    landmark = chinese["landmark"]["layout"]
    assert landmark["title"]["text"].startswith("第 45 天界标：")
    names = [t.get("name", "") for t in chinese["rfs_by_early_regeneration"]["data"]]
    assert any(n.startswith("早期再生（n=") for n in names), names
    # The figures' p-value notes keep their numbers.
    notes = [a["text"] for a in chinese["rfs_by_early_regeneration"]["layout"]["annotations"]]
    assert any(re.fullmatch(r"p (< 0\.001|= \d\.\d{3})", n) for n in notes), notes


def test_the_figures_url_alone_decides_the_language(clinician_client, snapshot):
    """The browser keeps a snapshot's figures for a year by their URL: the same URL answers in
    the same language whatever the headers, and an unknown language gets the default."""
    base = f"/dashboard/snapshots/{snapshot.pk}/figures.json"
    plain = clinician_client.get(base, HTTP_ACCEPT_LANGUAGE="de").json()
    assert plain["rfs"]["layout"]["title"]["text"] == "Relapse-free survival, CR patients"
    german = clinician_client.get(f"{base}?lang=de", HTTP_ACCEPT_LANGUAGE=ZH_BROWSER).json()
    assert german["rfs"]["layout"]["title"]["text"] == "Rezidivfreies Überleben, Patienten in CR"
    unknown = clinician_client.get(f"{base}?lang=xx").json()
    assert unknown["rfs"]["layout"]["title"]["text"] == "Relapse-free survival, CR patients"


def test_the_dashboards_group_labels_are_translated_but_the_report_stays_english(
    clinician, clinician_client, snapshot
):
    _german(clinician)
    page = clinician_client.get("/dashboard/").content.decode()
    assert "frühe B-Zell-Regeneration (≤ Tag 45) gegenüber keiner" in page
    assert "keine frühe B-Zell-Regeneration: n=" in page
    assert "<strong>Alle infundierten Patienten</strong>" in page
    snapshot.refresh_from_db()
    assert snapshot.cohort_label == "all infused patients"  # stored in English
    groups = snapshot.report["logrank"]["early_regeneration"]["groups"]
    assert {g["label"] for g in groups} == {"early regeneration", "no early regeneration"}


def test_the_data_dictionary_page_is_translated(clinician, clinician_client):
    chinese = clinician_client.get(
        "/dashboard/data-dictionary/", HTTP_ACCEPT_LANGUAGE=ZH_BROWSER
    ).content.decode()
    assert "假名化研究编号（唯一）。" in chinese
    assert "<code>study_id</code>" in chinese  # the column names stay as in the file
    assert "自首次输注起的无复发生存时间；非CR则为空。" in chinese
    assert "regen_day &lt;= 45 时为1，否则为0" in chinese  # the window filled after translation
    _german(clinician)
    german = clinician_client.get("/dashboard/data-dictionary/").content.decode()
    assert "Pseudonyme Studien-ID (eindeutig)." in german
    assert "Tag der ersten nachweisbaren B-Zell-Zahl im peripheren Blut nach der Aplasie." in german
    assert "Zahl &gt;= 0 (Tage seit der ersten Infusion); leer erlaubt" in german
    assert "keine Subtraktion zweier Ansichten" in german.replace("Keine", "keine")


def test_every_download_is_the_same_in_every_language(clinician, clinician_client, snapshot):
    """CSV columns, cells and the dictionary's files are language-neutral: byte-equal for an
    English, a German and a Chinese browser and a user who chose German."""
    downloads = [
        f"/dashboard/export.csv?snapshot={snapshot.pk}",
        "/dashboard/data-dictionary/?format=csv",
        "/dashboard/data-dictionary/?format=md",
        "/dashboard/tables/?format=csv&grouping=early_regen&ties=efron",
    ]
    readers = [{}, {"HTTP_ACCEPT_LANGUAGE": "de-DE,de;q=0.9"}, {"HTTP_ACCEPT_LANGUAGE": ZH_BROWSER}]
    bodies = {url: [] for url in downloads}
    for headers in readers:
        for url in downloads:
            response = clinician_client.get(url, **headers)
            assert response.status_code == 200, (url, response.content[:200])
            bodies[url].append(response.content)
    _german(clinician)
    for url in downloads:
        bodies[url].append(clinician_client.get(url).content)
    for url, seen in bodies.items():
        assert len(set(seen)) == 1, url
    assert b"study_id,center,product" in bodies[downloads[0]][0]
    assert b"Pseudonymous study ID (unique)." in bodies[downloads[1]][0]
    assert b"Early B-cell regeneration" in bodies[downloads[3]][0]


def test_the_publication_page_is_in_the_readers_language(clinician, clinician_client, study):
    chinese = clinician_client.get("/dashboard/tables/", HTTP_ACCEPT_LANGUAGE=ZH_BROWSER)
    assert "输注时年龄（岁）" in chinese.content.decode()
    _german(clinician)  # a user's own choice wins over the browser's
    page = clinician_client.get("/dashboard/tables/", HTTP_ACCEPT_LANGUAGE=ZH_BROWSER)
    page = page.content.decode()
    assert "Alter bei Infusion, Jahre" in page
    assert "Exakter Test nach Fisher" in page
    assert "Frühe B-Zell-Regeneration (zeitabhängig)" in page  # a covariate of Table 2
    assert '<option value="car_loss">Verlust der CAR-Kopien</option>' in page
    assert "n = zurückgehalten" in page  # another center's patients: counts withheld


def test_a_refresh_runs_step_is_shown_translated(clinician, clinician_client):
    run = RefreshRun.objects.create(cohort_key="all", status=RUNNING, step="Survival analyses")
    status = clinician_client.get(f"/dashboard/runs/{run.pk}/", HTTP_ACCEPT_LANGUAGE="de").json()
    assert status["step"] == "Überlebensanalysen"
    assert (status["status"], status["status_label"]) == ("running", "läuft")  # the code stays
    run.refresh_from_db()
    assert run.step == "Survival analyses"  # stored in English


def test_nested_texts_are_translated_and_numbers_kept():
    tx = FigureTexts()
    label = tx("early regeneration")
    figure = {
        "data": [{"name": tx("{label} (n={n}, events={events})", label=label, n=7, events=3)}],
        "layout": {},
    }
    figure = tx.attach(figure)
    assert figure["data"][0]["name"] == "early regeneration (n=7, events=3)"
    with translation.override("zh-hans"):
        assert localized(figure)["data"][0]["name"] == "早期再生（n=7，事件=3）"
    with translation.override("de"):
        assert (
            localized(figure)["data"][0]["name"] == "frühe B-Zell-Regeneration (n=7, Ereignisse=3)"
        )
    # A figure stored before texts were recorded is served as it is.
    assert localized({"data": [{"name": "RFS"}], "layout": {}})["data"][0]["name"] == "RFS"


def test_the_sign_in_code_form_and_the_audit_admin_labels_are_translated():
    with translation.override("de"):
        form = SignInCodeForm({"token": "x"})
        assert not form.is_valid()
        assert form.errors["token"] == [
            "Geben Sie die 6 Ziffern ein, die Ihre Authenticator-App anzeigt, oder einen "
            "Wiederherstellungscode (8 Buchstaben und Ziffern)."
        ]
        assert str(AccessEvent._meta.verbose_name_plural) == "Zugriffe"
    with translation.override("zh-hans"):
        assert str(form.fields["token"].label) == "身份验证器应用中的6位验证码，或一个恢复码"
        assert str(AccessEvent._meta.get_field("target").verbose_name) == "读取内容"
        assert dict(AccessEvent.KINDS)[AccessEvent.EXPORT] == "导出"


def test_the_rule_performance_page_and_its_calibration_plot_in_chinese(client, registry, study):
    import json

    client.force_login(registry)
    alerts = client.get("/dashboard/rules/alerts.csv").content
    html = client.get("/dashboard/rules/", HTTP_ACCEPT_LANGUAGE=ZH_BROWSER).content.decode()
    assert "首次输注后未撤回的早期再生预警，发现日在界标当日或之前" in html  # the definitions
    assert "此网格以60种方式分析同一批患者。" in html  # the calibration caveat
    block = re.search(
        r'<script id="calibration_unconfirmed" type="application/json">(.*?)</script>', html, re.S
    ).group(1)
    figure = json.loads(block)
    assert figure["layout"]["title"]["text"] == "复发或死亡的风险比，无需确认"
    assert figure["layout"]["yaxis"]["title"]["text"] == "风险比（对数刻度）"
    assert TEXTS_KEY not in figure
    german = client.get("/dashboard/rules/?landmark=45", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    block = re.search(
        r'<script id="calibration_confirmed" type="application/json">(.*?)</script>', german, re.S
    ).group(1)
    title = json.loads(block)["layout"]["title"]["text"]
    assert title == "Hazard Ratio für Rezidiv oder Tod, mit Bestätigung"
    assert '<option value="45" selected>Tag 45</option>' in german
    # The export stays the same file in every language.
    assert client.get("/dashboard/rules/alerts.csv", HTTP_ACCEPT_LANGUAGE="de").content == alerts
