"""The synthetic demo cohort (CLINICAL.md sections 1 and 6): shaped like the study, marked
synthetic, deterministic, and loaded once.

The load takes seconds, so it runs once for the module, inside a transaction rolled back at the
end; each test runs in a savepoint of it. Only the reset test loads a second time. Every test
asks for `db`, so pytest-django keeps them together (it runs database tests first) and the
module's load is not repeated. Marked slow: `-m "not slow"` leaves them out.
"""

from datetime import UTC, datetime, timedelta
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


@pytest.fixture
def cohort(demo_load_output, db):
    return Patient.objects.select_related("center").prefetch_related(
        "infusions", "responses", "events", "lab_results"
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
    assert shown == cohort.filter(center__code="alpha").count()
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
    assert (
        sum(
            client.get("/patients/", {"page": page}).content.decode().count('href="/patients/DEMO-')
            for page in (1, 2)
        )
        == 55
    )
    client.logout()
    client.post("/login/", {"username": "dr.beta", "password": DEMO_PASSWORD})
    beta = Patient.objects.filter(center__code="beta").count()
    assert 0 < beta < 55
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
