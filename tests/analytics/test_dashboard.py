"""The survival dashboard page, its refresh button and the run-status endpoint."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from analytics import services
from analytics.dataset import CohortFilter
from analytics.models import DONE, QUEUED, DashboardSnapshot, RefreshRun
from tests.analytics.test_dataset import infused_patient
from tests.analytics.test_snapshot import small_study

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"
REFRESH = "/dashboard/refresh/"
PLOTLY = "/static/vendor/plotly/plotly.min.js"


@pytest.fixture
def study(frozen_now):
    return small_study()


@pytest.fixture
def eager(settings):
    """Run Celery tasks in-process, as without a broker."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def _page(client, **params) -> str:
    response = client.get(DASHBOARD, params)
    assert response.status_code == 200
    return response.content.decode()


def _results_rows(html: str) -> list[list[str]]:
    """The headline table as rows of cell texts."""
    table = re.search(r'data-testid="results">(.*?)</table>', html, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [unescape(re.sub(r"<[^>]+>", " ", td)) for td in re.findall(r"<td>(.*?)</td>", tr)]
        rows.append([" ".join(c.replace("\xa0", " ").split()) for c in cells])
    return [r for r in rows if r]


def _row(rows: list[list[str]], starts: str) -> list[str]:
    found = [r for r in rows if r[0].startswith(starts)]
    assert len(found) == 1, f"{starts!r}: {found}"
    return found[0]


def test_page_shows_when_the_snapshot_was_computed(clinician_client, study):
    services.snapshot_compute(options={})
    html = _page(clinician_client)
    meta = re.search(r'data-testid="snapshot-meta">(.*?)</p>', html, re.S).group(1)
    # Computed at the fixed "now", 10:00 UTC, shown in the clinic's time zone (Berlin, CET).
    assert "computed 3 Nov 2025 11:00" in meta  # DATETIME_FORMAT (en-gb), issue 23
    assert "All infused patients" in meta
    assert "up to date with the data" in meta
    assert 'data-testid="stale"' not in html


def test_headline_table_shows_every_result_of_the_snapshot(clinician_client, study, settings):
    settings.SMALL_CELL_MIN = 0  # the exact counts (suppression: tests/analytics/test_disclosure)
    report = services.snapshot_compute(options={}).report
    rows = _results_rows(_page(clinician_client))

    assert _row(rows, "Complete remission")[1:] == [
        "10/12 = 83.3 %",
        "51.6 %–97.9 %",
        "Clopper-Pearson exact",
    ]
    rfs_bc = report["rfs"]["median_brookmeyer_crowley"]
    rfs_sym = report["rfs"]["median_symmetric"]
    medians = [r for r in rows if r[0].startswith(("Median", "same, symmetric"))]
    assert [r[0] for r in medians] == [
        "Median relapse-free survival, CR patients",
        "same, symmetric form",
        "Median overall survival, CR patients",
        "same, symmetric form",
    ]
    assert medians[0][1:3] == [f"{rfs_bc['median']:.0f} d", f"{rfs_bc['lower']:.0f} d–not reached"]
    assert medians[0][3].startswith("Brookmeyer–Crowley")
    assert medians[1][1:3] == [
        f"{rfs_sym['median']:.0f} d",
        f"{rfs_sym['lower']:.0f} d–{rfs_sym['upper']:.0f} d",
    ]
    assert "Collett" in medians[1][3]
    assert medians[2][1] == "not reached"  # OS median of this cohort is not reached

    logrank = {r[0]: r for r in rows if r[0].startswith("Log-rank")}
    assert len(logrank) == 4
    early = logrank["Log-rank, RFS: early B-cell regeneration (≤ day 45) vs none"]
    assert early[1] == f"χ² {report['logrank']['early_regeneration']['chi2']:.3g} (df 1)"
    assert early[2] == f"p = {report['logrank']['early_regeneration']['p_value']:.3f}"
    assert "early regeneration: n=5, events=4" in early[3]

    landmark = _row(rows, "Landmark at day 45")
    assert "10 relapse-free at the landmark" in landmark[3]
    cox = _row(rows, "Cox, early regeneration as time-varying covariate")
    assert cox[1] == f"HR {report['cox']['time_varying']['hazard_ratio']:.3g}"
    cir = [r for r in rows if r[0].startswith("Cumulative incidence of relapse")]
    assert [r[0] for r in cir] == [
        "Cumulative incidence of relapse at day 180",
        "Cumulative incidence of relapse at day 365",
    ]
    assert [r[1] for r in cir] == ["40.0 %", "60.0 %"]


def test_log_rank_rows_keep_the_reports_order(clinician_client, study):
    """Early regeneration (the study's question) first, as headline_report orders them; the
    JSON column must not reorder the comparisons (PostgreSQL jsonb sorts keys by length)."""
    services.snapshot_compute(options={})
    rows = _results_rows(_page(clinician_client))
    assert [r[0] for r in rows if r[0].startswith("Log-rank")] == [
        "Log-rank, RFS: early B-cell regeneration (≤ day 45) vs none",
        "Log-rank, RFS: anti-leukemic vs immunomodulatory pre-emption, early regenerators",
        "Log-rank, RFS: BM MRD positive vs negative",
        "Log-rank, RFS: BM CAR copies lost vs retained",
    ]


def test_page_has_a_figure_container_for_each_figure(clinician_client, study, settings):
    settings.SMALL_CELL_MIN = 1  # no suppression: beta's 3 patients would withhold the curves
    services.snapshot_compute(options={})
    html = _page(clinician_client)
    for name in ("rfs", "os", "landmark", "cir"):
        assert f'data-testid="figure-{name}"' in html
        assert f'<div id="fig-{name}" class="plot" data-figure="{name}">' in html
    # The figures' data is fetched from the snapshot's URL, not inlined (nor any script).
    snapshot = DashboardSnapshot.objects.get()
    url = f"/dashboard/snapshots/{snapshot.pk}/figures.json"
    assert f'data-figures-url="{url}"' in html
    assert "<script>" not in html and 'type="application/json"' not in html
    response = clinician_client.get(url)
    assert response["Content-Type"] == "application/json"
    # Aggregates of an immutable snapshot: the browser keeps them (the signed-in no-store rule
    # exempts responses that declare themselves immutable); the page itself is never stored.
    assert "immutable" in response["Cache-Control"]
    assert "max-age=31536000" in response["Cache-Control"]
    assert "no-store" not in response["Cache-Control"]
    assert "no-store" in clinician_client.get("/dashboard/")["Cache-Control"]
    figures = response.json()
    assert {"rfs", "os", "landmark", "cir"} <= set(figures)
    assert figures["rfs"]["data"] and figures["rfs"]["layout"]
    assert clinician_client.get("/dashboard/snapshots/999999/figures.json").status_code == 404


def test_page_says_newer_data_exists_after_a_change(clinician_client, study, frozen_now):
    services.snapshot_compute(options={})
    assert 'data-testid="stale"' not in _page(clinician_client)
    frozen_now.shift(timedelta(minutes=5))
    infused_patient(responses=((28, "NR"),), death=80)
    html = _page(clinician_client)
    assert 'data-testid="stale"' in html
    assert "newer data exists" in html


def test_center_filter_shows_that_centers_snapshot(clinician_client, stranger, study):
    services.snapshot_compute(options={})
    services.snapshot_compute(options={"center": "beta"})
    # Beta's own hematologist sees Beta's exact small counts ...
    beta_client = Client()
    beta_client.force_login(stranger)
    html = _page(beta_client, center="beta")
    assert "Center beta" in re.search(r'data-testid="snapshot-meta">(.*?)</p>', html, re.S)[1]
    assert _row(_results_rows(html), "Complete remission")[1] == "1/3 = 33.3 %"
    # ... a hematologist of another center (Alpha) sees the same snapshot with them suppressed.
    html = _page(clinician_client, center="beta")
    assert "Center beta" in re.search(r'data-testid="snapshot-meta">(.*?)</p>', html, re.S)[1]
    assert _row(_results_rows(html), "Complete remission")[1].startswith("<5/<5")
    # A center without its own snapshot says so rather than showing another cohort's numbers.
    html = _page(clinician_client, center="alpha")
    assert 'data-testid="no-snapshot"' in html
    assert "No snapshot of center alpha has been computed yet" in html
    assert 'data-testid="results"' not in html


def test_refresh_in_eager_mode_computes_a_snapshot(
    clinician_client, study, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = clinician_client.post(REFRESH, {"center": "alpha"})
    run = RefreshRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{DASHBOARD}?center=alpha&run={run.pk}"
    assert (run.status, run.progress, run.error) == (DONE, 100, "")
    assert run.cohort_key == CohortFilter(center="alpha").key
    assert run.requested_by.username == "clinician"
    assert run.snapshot.n_patients == 9
    assert services.latest_snapshot(CohortFilter(center="alpha")) == run.snapshot
    html = clinician_client.get(response["Location"]).content.decode()
    assert _row(_results_rows(html), "Complete remission")[1] == "9/9 = 100.0 %"


def test_refresh_redirect_keeps_a_product_name_with_a_plus(
    clinician_client, eager, django_capture_on_commit_callbacks
):
    """Bispecific products are named like "CD19+CD22 CAR-T": the redirect after "Refresh now"
    must come back to that product's cohort, not to a mangled one."""
    product = "CD19+CD22 CAR-T"
    infused_patient(product=product, followup=120)
    infused_patient(product="tisagenlecleucel", followup=120)
    with django_capture_on_commit_callbacks(execute=True):
        response = clinician_client.post(REFRESH, {"product": product})
    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["product"] == [product]
    html = clinician_client.get(response["Location"]).content.decode()
    assert f"Product {product}" in html  # that product's snapshot, not the whole cohort's


def test_refresh_while_a_run_is_pending_does_not_start_another(
    clinician_client, study, eager, django_capture_on_commit_callbacks
):
    pending = RefreshRun.objects.create(cohort_key=CohortFilter().key, options={})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = clinician_client.post(REFRESH)
    assert callbacks == []
    assert list(RefreshRun.objects.all()) == [pending]
    assert parse_qs(urlsplit(response["Location"]).query)["run"] == [str(pending.pk)]
    html = _page(clinician_client, run=pending.pk)
    assert f'data-run="/dashboard/runs/{pending.pk}/"' in html


def test_refresh_refuses_get(clinician_client):
    assert clinician_client.get(REFRESH).status_code == 405
    assert not RefreshRun.objects.exists()


def test_anonymous_cannot_refresh_or_see_the_dashboard(client, study):
    for response in (client.post(REFRESH), client.get(DASHBOARD)):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert not RefreshRun.objects.exists()


def test_run_status_is_json(clinician_client, study):
    run = RefreshRun.objects.create(cohort_key=CohortFilter().key, options={})
    response = clinician_client.get(f"/dashboard/runs/{run.pk}/")
    assert response.status_code == 200
    assert response.json() == {
        "status": QUEUED,
        "status_label": "queued",  # as people read it (translated), beside the code
        "step": "",
        "progress": 0,
        "error": "",
        "snapshot": None,
    }
    services.refresh_run_execute(run_id=run.pk)
    body = clinician_client.get(f"/dashboard/runs/{run.pk}/").json()
    assert (body["status"], body["step"], body["progress"]) == (DONE, "Done", 100)
    assert body["snapshot"] == DashboardSnapshot.objects.get().pk
    assert clinician_client.get("/dashboard/runs/999999/").status_code == 404


def test_plotly_is_served_locally_and_no_script_comes_from_elsewhere(clinician_client, study):
    services.snapshot_compute(options={})
    html = _page(clinician_client)
    sources = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html)
    assert "/static/vendor/plotly/plotly.min.js" in sources
    assert not [s for s in sources if re.match(r"(https?:)?//", s)]
    assert not re.search(r"<link[^>]+href=\"(https?:)?//", html)

    response = clinician_client.get(PLOTLY)
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content)
    assert len(body) > 1_000_000  # the whole bundle, not a stub
    assert b"plotly.js" in body[:500]


def test_plotly_bundle_needs_no_login(client):
    assert client.get(PLOTLY).status_code == 200
