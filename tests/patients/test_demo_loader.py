"""The synthetic demo cohort (CLINICAL.md sections 1 and 6): shaped like the study, marked
synthetic, deterministic, and loaded once.

The load takes seconds, so it runs once for the module, inside a transaction rolled back at the
end; each test runs in a savepoint of it. Only the reset test loads a second time. Every test
asks for `db`, so pytest-django keeps them together (it runs database tests first) and the
module's load is not repeated. Marked slow: `-m "not slow"` leaves them out.
"""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from demo import cohort as demo
from demo.load import DEMO_PASSWORD
from patients import units
from patients.days import local_date
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)

# After the cohort's data cutoff (its last date), so no demo date lies in the future.
LOADED_AT = datetime.combine(
    demo.DATA_CUTOFF + timedelta(days=1), datetime.min.time(), tzinfo=UTC
).replace(hour=12)
RESPONSE_RANK = ["CR", "CRi", "PR", "NR", "PD", "NE"]  # best first
WEEKLY_TO_DAY_90 = list(range(7, 91, 7))  # days 7, 14, ... 84

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_load_output(django_db_setup, django_db_blocker):
    """Load the cohort once for the module; roll it back afterwards."""
    with django_db_blocker.unblock(), time_machine.travel(LOADED_AT, tick=False):
        with transaction.atomic():
            out = StringIO()
            call_command("load_demo_cohort", stdout=out)
            yield out.getvalue()
            transaction.set_rollback(True)


LIVE_IDS = [row[0] for row in demo.LIVE_PATIENTS]


@pytest.fixture
def cohort(demo_load_output, db):
    """The 55 patients of the reference cohort (the patients in their first weeks aside)."""
    return (
        Patient.objects.exclude(study_id__in=LIVE_IDS)
        .select_related("center")
        .prefetch_related("infusions", "responses", "events", "lab_results")
    )


def test_the_command_reports_what_it_loaded(demo_load_output, db):
    assert "Loaded 55 synthetic patients" in demo_load_output
    assert DEMO_PASSWORD in demo_load_output  # the logins are printed for the demo


def test_55_patients_were_infused_with_cd19_car_t(cohort):
    assert cohort.count() == demo.N_PATIENTS == 55
    for patient in cohort:
        first = min(patient.infusions.all(), key=lambda i: i.infusion_date)
        assert first.infusion_number == 1
        assert first.target_antigen == "CD19"
        assert first.infusion_date <= demo.DATA_CUTOFF


def test_45_of_55_reached_cr_or_cri_a_cr_rate_of_81_8_percent(cohort):
    best = {}
    for patient in cohort:
        responses = [r.response for r in patient.responses.all()]
        assert responses, f"{patient} has no response assessment"
        best[patient.study_id] = min(responses, key=RESPONSE_RANK.index)
    in_cr = [study_id for study_id, response in best.items() if response in ("CR", "CRi")]
    assert len(in_cr) == 45
    assert round(100 * len(in_cr) / len(best), 1) == 81.8


def test_every_demo_patient_is_marked_synthetic_where_shown(cohort, client):
    assert all(patient.is_synthetic for patient in cohort)
    assert all(patient.full_name.startswith("Synthetic") for patient in cohort)
    client.post("/login/", {"username": "dr.alpha", "password": DEMO_PASSWORD})
    listing = client.get("/patients/").content.decode()
    shown = listing.count('href="/patients/DEMO-')
    assert shown == Patient.objects.filter(center__code="alpha").count()
    assert listing.count('class="tag synthetic"') == shown
    page = client.get("/patients/DEMO-002/").content.decode()
    assert "synthetic demo data" in page


def test_pb_bcell_counts_follow_the_schedule_weekly_to_day_90(cohort):
    followed_past_day_84 = 0
    for patient in cohort:
        infused = min(i.infusion_date for i in patient.infusions.all())
        tz = patient.center.tzinfo
        days = sorted(
            (local_date(r.collected_at, tz) - infused).days
            for r in patient.lab_results.all()
            if r.analyte == units.PB_BCELL_ABS
        )
        assert days[0] < 0 and days[1] > 0, f"{patient}: one baseline count before infusion"
        early = [d for d in days if 0 < d <= 90]
        assert early == WEEKLY_TO_DAY_90[: len(early)], f"{patient}: {early}"
        later = [d for d in days if d > 90]
        assert all(d >= 120 and (d - 120) % 30 == 0 for d in later), f"{patient}: {later}"
        ends = [
            e.event_date
            for e in patient.events.all()
            if e.kind in ("relapse", "death", "last_followup")
        ]
        if (min(ends) - infused).days >= 84:
            followed_past_day_84 += 1
            assert early == WEEKLY_TO_DAY_90, f"{patient} missed a weekly count"
    assert followed_past_day_84 >= 40  # most patients are followed beyond the early window


def test_every_count_is_a_value_with_its_unit_or_a_qualifier(cohort):
    results = LabResult.objects.filter(patient__is_synthetic=True)
    assert results.filter(value__isnull=True, qualifier="").count() == 0
    assert results.exclude(qualifier="").filter(value__isnull=False).count() == 0
    assert set(results.filter(analyte=units.ALC).values_list("unit", flat=True)) == {
        units.GIGA_PER_L
    }
    assert not results.filter(analyte=units.ALC, canonical_value__lt=300).exists()


def test_the_demo_users_exist_and_can_sign_in(demo_load_output, db, client):
    users = get_user_model().objects.filter(
        username__in=["dr.alpha", "dr.beta", "registry", "admin"]
    )
    assert users.count() == 4
    for username in ("dr.alpha", "dr.beta", "registry", "admin"):
        client.logout()
        response = client.post("/login/", {"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, username
        assert response["Location"] == "/"  # the worklist
    # Registry staff read every center (over two pages); a hematologist only their own.
    assert sum(
        client.get("/patients/", {"page": page}).content.decode().count('href="/patients/DEMO-')
        for page in (1, 2)
    ) == 55 + len(LIVE_IDS)
    client.logout()
    client.post("/login/", {"username": "dr.beta", "password": DEMO_PASSWORD})
    beta = Patient.objects.filter(center__code="beta").count()
    assert 0 < beta < 55 + len(LIVE_IDS)
    assert client.get("/patients/").content.decode().count('href="/patients/DEMO-') == beta


def _cohort_contents():
    def rows(model, *fields):
        return sorted(
            model.objects.filter(patient__is_synthetic=True).values_list(
                "patient__study_id", *fields
            )
        )

    return {
        "patients": sorted(
            Patient.objects.filter(is_synthetic=True).values_list(
                "study_id", "center__code", "sex", "date_of_birth", "ph_positive"
            )
        ),
        "infusions": rows(
            Infusion, "infusion_number", "infusion_date", "product", "dose_cells_per_kg"
        ),
        "labs": rows(
            LabResult,
            "analyte",
            "specimen",
            "collected_at",
            "value",
            "unit",
            "qualifier",
            "canonical_value",
            "method",
        ),
        "responses": rows(ResponseAssessment, "assessed_on", "response", "mrd_status"),
        "events": rows(ClinicalEvent, "kind", "event_date", "relapse_cd19", "death_cause"),
        "therapies": rows(PreemptiveTherapy, "start_date", "category", "agent", "agent_detail"),
    }


def _row_counts():
    return {
        model.__name__: model.objects.count()
        for model in (
            Patient,
            Infusion,
            LabResult,
            ResponseAssessment,
            ClinicalEvent,
            PreemptiveTherapy,
            get_user_model(),
        )
    }


def test_loading_again_without_reset_adds_nothing(demo_load_output, db):
    before = _row_counts()
    out = StringIO()
    with time_machine.travel(LOADED_AT, tick=False):
        call_command("load_demo_cohort", "--quiet-logins", stdout=out)
    assert "already loaded" in out.getvalue()
    assert _row_counts() == before


def test_a_reset_loads_exactly_the_same_cohort_again(demo_load_output, db):
    first = _cohort_contents()
    assert len(first["labs"]) > 1000
    with time_machine.travel(LOADED_AT, tick=False):
        call_command("load_demo_cohort", "--reset", "--quiet-logins", stdout=StringIO())
    assert _cohort_contents() == first


def test_the_demo_raises_its_alerts_as_current_in_the_worklist_and_e_mails_nobody(
    demo_load_output, db
):
    """The demo is synthetic and shows the product: its findings are news (not history), so the
    worklist starts with them; loading it still sends no e-mail."""
    from monitoring.models import ACTIVE_STATUSES, Alert, Notification

    alerts = Alert.objects.filter(patient__is_synthetic=True)
    assert alerts.exists() and not alerts.filter(historical=True).exists()
    assert alerts.filter(status__in=ACTIVE_STATUSES, severity="high").exists()
    assert not Notification.objects.exists()


def test_the_cohort_ends_the_day_before_it_is_loaded(cohort):
    """Loaded on LOADED_AT's day, no record lies after the day before (the reference dates)."""
    last = max(
        local_date(r.collected_at, r.patient.center.tzinfo)
        for r in LabResult.objects.select_related("patient__center")
    )
    assert last == LOADED_AT.date() - timedelta(days=1)


def test_patients_in_their_first_weeks_today_a_count_due_and_a_fresh_regeneration(
    demo_load_output, db
):
    from monitoring.models import ACTIVE_STATUSES, Alert

    today = LOADED_AT.date()
    live = Patient.objects.filter(study_id__in=LIVE_IDS).prefetch_related("infusions")
    assert live.count() == len(LIVE_IDS) == 4
    for patient in live:
        (infusion,) = patient.infusions.all()
        assert 0 < (today - infusion.infusion_date).days <= 45, patient  # inside the window
        assert not patient.responses.exists()  # not assessed: outside every statistic
    active = Alert.objects.filter(patient__in=live, status__in=ACTIVE_STATUSES)
    early = active.get(rule="early_regeneration")
    assert (early.patient.study_id, early.day, early.severity) == ("DEMO-L01", 21, "high")
    assert early.raised_at.astimezone(early.patient.center.tzinfo).date() == today - timedelta(2)
    due = active.get(rule="bcell_count_due")
    assert due.patient.study_id == "DEMO-L02"
    assert due.raised_at.astimezone(due.patient.center.tzinfo).date() == today  # due today


def test_each_demo_alert_is_dated_on_its_finding_not_on_the_loading_day(demo_load_output, db):
    from demo.load import finding_date
    from monitoring.models import Alert

    alerts = list(Alert.objects.filter(patient__is_synthetic=True).select_related("infusion"))
    assert len(alerts) > 20
    loaded = LOADED_AT.date()
    for alert in alerts:
        on = finding_date(alert)
        tz = alert.patient.center.tzinfo
        assert alert.raised_at.astimezone(tz).date() == on, alert
        assert alert.arrived_at == alert.raised_at
        assert on >= alert.infusion.infusion_date + timedelta(days=alert.day)
        if alert.closed_at is not None:
            assert alert.raised_at <= alert.closed_at
            assert alert.closed_at.astimezone(tz).date() == alert.therapy.start_date
        first_event = alert.events.order_by("created_at").first()
        assert first_event.created_at == alert.raised_at
    # Years of findings, most long before the loading day.
    assert sum(a.raised_at.date() < loaded - timedelta(days=365) for a in alerts) > len(alerts) / 2


def test_dated_on_another_day_every_day_after_infusion_and_every_age_stay():
    reference = demo.generate_cohort()
    today = date(2026, 12, 2)
    moved = demo.dated(reference, today)
    shift = today - demo.REFERENCE_TODAY
    for before, after in zip(reference, moved, strict=True):
        assert after.infusion_date == before.infusion_date + shift
        assert after.labs == before.labs and after.events == before.events
        assert after.responses == before.responses and after.therapies == before.therapies
        assert demo._age_years(after.date_of_birth, after.infusion_date) == demo._age_years(
            before.date_of_birth, before.infusion_date
        )
    assert demo.dated(reference, demo.REFERENCE_TODAY) == reference
    # The last day any record carries is the day before loading.
    last = max(p.on(max(lab.day for lab in p.labs)) for p in moved)
    assert last == today - timedelta(days=1)
