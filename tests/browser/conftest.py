"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

The pattern every browser test follows: request `live_server` and `transactional_db` (the
server thread reads the data over its own connection, so it must be committed), take a `page`,
sign in through the real login form with `tests.browser.steps.sign_in`, and click through as a
user would. The steps the tests share are in `tests.browser.steps`.
"""

import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine

from analytics.services import snapshot_compute
from imports.held import held_result_record
from monitoring.models import Alert
from patients import units
from patients.services import LabValue, lab_results_record
from tests.browser.steps import patient_in_aplasia
from tests.factories import BERLIN, EventFactory, InfusionFactory, PatientFactory, ResponseFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MORNING = datetime(2025, 3, 20, 8, 0, tzinfo=UTC)  # day 19 after the 1 March infusion


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so the page fixture knows whether it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        # A missing browser is a broken machine, not a reason to skip: the check would silently
        # stop running.
        pytest.fail(
            f"Debian's chromium is missing at {CHROMIUM}: apt-get install chromium", pytrace=False
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an asyncio event loop in this (the test) thread. Django refuses
    # ORM calls from a thread with a running loop (SynchronousOnlyOperation), which would break
    # the test's own setup and assertions and pytest-django's database flush. The loop only
    # drives the browser and never calls Django, so the check is switched off, and only while
    # Playwright runs, so the rest of the suite keeps the safety check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_tab(browser, live_server, transactional_db, request):
    """Open a fresh tab (own cookies) with any browser context options, e.g. a locale, a time
    zone or a phone's viewport (default 1280 x 900); a screenshot of each tab is saved if the
    test fails."""
    tabs = []

    def open_(**options):
        options = {"viewport": {"width": 1280, "height": 900}, **options}
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(10_000)
        tabs.append(context.new_page())
        return tabs[-1]

    yield open_
    report = getattr(request.node, "report_call", None)
    for n, tab in enumerate(tabs):
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            suffix = f"-{n + 1}" if n else ""
            tab.screenshot(
                path=str(ARTIFACTS / f"{request.node.name}{suffix}-failure.png"), full_page=True
            )
        tab.context.close()


@pytest.fixture
def page(open_tab):
    """A fresh desktop tab."""
    return open_tab()


@pytest.fixture
def patient_on_day_19(clinician, center):
    """`steps.patient_in_aplasia` (CT-0077), the test running on the morning of its day 19."""
    with time_machine.travel(MORNING, tick=False):
        yield patient_in_aplasia(clinician=clinician, center=center)


@pytest.fixture
def registry_data(clinician, center):
    with time_machine.travel(datetime(2025, 11, 3, 9, tzinfo=UTC), tick=False):
        for n, regenerates in enumerate([True, False, True, False]):
            patient = PatientFactory(center=center, study_id=f"CT-01{n:02d}")
            patient.hematologists.add(clinician)
            InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
            ResponseFactory(patient=patient, assessed_on=date(2025, 3, 29))
            for day, value in [(7, None), (30, Decimal(12) if regenerates else None)]:
                lab_results_record(
                    patient=patient,
                    collected_at=datetime(2025, 3, 1, 8, tzinfo=BERLIN) + timedelta(days=day),
                    values=[
                        LabValue(
                            units.PB_BCELL_ABS,
                            value,
                            units.CELLS_PER_UL,
                            units.UNDETECTABLE if value is None else "",
                        )
                    ],
                    entered_by=clinician,
                )
            if regenerates and n == 0:
                EventFactory(patient=patient, kind="relapse", event_date=date(2025, 6, 1))
        snapshot_compute(options={})
        # four patients: pooled views withhold them (issue 21); their center sees its figures
        snapshot_compute(options={"center": center.code})
    held_result_record(
        center=center,
        source="hl7",
        sender="LAB|HOSP",
        reason="unknown_patient",
        reason_text="No patient with MRN '4711' at Center Alpha: register the patient.",
        identifier="4711",
        code="CD19ABS",
        value="12",
        unit="/uL",
        collected_at_text="202503100800",
        raw="OBX|1|NM|CD19ABS^CD19+ B cells^L||12|/uL|||||F",
        identifier_kind="mrn",
    )
    return Alert.objects.filter(rule="early_regeneration").first()
