"""The browser forms, through the views: what a clinician types is saved, or shown back with the
message beside the field that needs correcting and nothing saved."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission

from patients import units
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from tests.factories import (
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
    ResponseFactory,
    TherapyFactory,
    UserFactory,
)
from tests.patients.conftest import sample_data
from tests.patients.page_text import field_errors, form_errors, input_value, sample_row_errors

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.usefixtures("frozen_now")


def _saved_to(response, study_id="CT-0001"):
    """The form was accepted: the browser is sent back to the patient page."""
    shown = response.context["form"].errors if response.status_code == 200 else ""
    assert response.status_code == 302, shown
    assert response["Location"] == f"/patients/{study_id}/"


# Patient -------------------------------------------------------------------------------------


def _patient_post(center, **changes):
    data = {
        "study_id": "CT-0100",
        "center": center.pk,
        "sex": "M",
        "date_of_birth": "1984-02-29",
        "diagnosis": "R/R B-ALL",
        "ph_positive": "true",
        "mrn": "MRN-0100",
        "full_name": "Max Mustermann",
    }
    data.update(changes)
    return data


def test_a_clinician_files_a_new_patient(clinician_client, clinician, center):
    data = _patient_post(center, hematologists=[clinician.pk])
    _saved_to(clinician_client.post("/patients/new/", data), "CT-0100")
    patient = Patient.objects.get(study_id="CT-0100")
    assert (patient.center, patient.sex, patient.date_of_birth, patient.ph_positive) == (
        center,
        "M",
        date(1984, 2, 29),
        True,
    )
    assert (patient.mrn, patient.full_name) == ("MRN-0100", "Max Mustermann")
    assert list(patient.hematologists.all()) == [clinician]
    history = patient.history.order_by("history_date", "history_id")
    assert history.first().history_type == "+"
    assert {row.history_user for row in history} == {clinician}


def test_a_new_patient_born_tomorrow_is_shown_back_with_the_message(clinician_client, center):
    response = clinician_client.post(
        "/patients/new/", _patient_post(center, date_of_birth="2025-11-04")
    )
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "date_of_birth") == [
        "The date of birth is in the future."
    ]
    assert not Patient.objects.exists()


def test_a_study_id_already_in_use_is_refused(clinician_client, center, patient):
    response = clinician_client.post("/patients/new/", _patient_post(center, study_id="CT-0001"))
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "study_id") == [
        "Another patient has this study ID (study IDs are compared without regard to upper and "
        "lower case)."
    ]
    assert Patient.objects.count() == 1


def test_a_clinician_cannot_file_a_patient_under_another_center(clinician_client, other_center):
    response = clinician_client.post("/patients/new/", _patient_post(other_center))
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "center")
    assert not Patient.objects.exists()


def test_a_clinician_corrects_a_patients_diagnosis(clinician_client, patient, center):
    page = clinician_client.get("/patients/CT-0001/edit/").content.decode()
    assert input_value(page, "diagnosis") == "R/R B-ALL"
    data = _patient_post(
        center,
        study_id="CT-0001",
        diagnosis="R/R B-ALL, Ph-like",
        ph_positive="false",
        mrn=patient.mrn,
        full_name=patient.full_name,
        date_of_birth="1990-05-17",
    )
    _saved_to(clinician_client.post("/patients/CT-0001/edit/", data))
    patient.refresh_from_db()
    assert (patient.diagnosis, patient.ph_positive) == ("R/R B-ALL, Ph-like", False)


# Identifiers ---------------------------------------------------------------------------------


def test_a_clinician_with_the_identifier_permission_sees_mrn_and_name(clinician_client, patient):
    page = clinician_client.get("/patients/CT-0001/").content.decode()
    assert "MRN-778899" in page and "Erika Mustermann" in page
    form = clinician_client.get("/patients/CT-0001/edit/").content.decode()
    assert input_value(form, "mrn") == "MRN-778899"


@pytest.fixture
def pseudonymous_editor(client, center, roles):
    """A data manager who may correct patients but not see who they are."""
    group = Group.objects.create(name="Data managers")
    group.permissions.set(
        Permission.objects.filter(codename__in=["view_patient", "change_patient"])
    )
    user = UserFactory(username="data.manager", center=center)
    user.groups.add(group)
    client.force_login(user)
    return client


def test_without_the_identifier_permission_mrn_and_name_are_not_shown(pseudonymous_editor, patient):
    page = pseudonymous_editor.get("/patients/CT-0001/").content.decode()
    assert "CT-0001" in page
    assert "MRN-778899" not in page and "Mustermann" not in page
    form = pseudonymous_editor.get("/patients/CT-0001/edit/").content.decode()
    assert 'name="mrn"' not in form and 'name="full_name"' not in form
    assert "MRN-778899" not in form and "Mustermann" not in form
    history = pseudonymous_editor.get("/patients/CT-0001/history/").content.decode()
    assert "MRN-778899" not in history and "Mustermann" not in history


def test_an_edit_without_the_identifier_permission_keeps_the_identifiers(
    pseudonymous_editor, patient, center
):
    data = _patient_post(
        center, study_id="CT-0001", diagnosis="R/R B-ALL, Ph+", date_of_birth="1990-05-17"
    )
    del data["mrn"], data["full_name"]
    _saved_to(pseudonymous_editor.post("/patients/CT-0001/edit/", data))
    patient.refresh_from_db()
    assert patient.diagnosis == "R/R B-ALL, Ph+"
    assert (patient.mrn, patient.full_name) == ("MRN-778899", "Erika Mustermann")


# Infusion ------------------------------------------------------------------------------------


def _infusion_post(**changes):
    data = {
        "infusion_number": "1",
        "infusion_date": "2025-03-01",
        "product": "tisagenlecleucel",
        "target_antigen": "CD19",
        "dose_cells_per_kg": "2000000",
        "lymphodepletion": "fludarabine + cyclophosphamide",
    }
    data.update(changes)
    return data


def test_a_clinician_records_an_infusion(clinician_client, clinician, patient):
    _saved_to(clinician_client.post("/patients/CT-0001/infusion/add/", _infusion_post()))
    infusion = patient.infusions.get()
    assert (infusion.infusion_date, infusion.infusion_number, infusion.dose_cells_per_kg) == (
        date(2025, 3, 1),
        1,
        Decimal(2_000_000),
    )
    assert infusion.history.get().history_user == clinician


def test_an_infusion_dated_tomorrow_is_shown_back_with_the_message(clinician_client, patient):
    response = clinician_client.post(
        "/patients/CT-0001/infusion/add/", _infusion_post(infusion_date="2025-11-04")
    )
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "infusion_date") == [
        "The infusion date 04 Nov 2025 is in the future."
    ]
    assert not Infusion.objects.exists()


def test_a_second_infusion_with_the_same_number_is_refused(clinician_client, infused_patient):
    response = clinician_client.post(
        "/patients/CT-0001/infusion/add/", _infusion_post(infusion_date="2025-05-01")
    )
    assert response.status_code == 200
    assert "This patient already has an infusion with this number." in form_errors(
        response.content.decode()
    )
    assert infused_patient.infusions.count() == 1


def test_a_clinician_corrects_an_infusion_date(clinician_client, infusion):
    _saved_to(
        clinician_client.post(
            f"/patients/CT-0001/infusion/{infusion.pk}/edit/",
            _infusion_post(infusion_date="2025-03-02"),
        )
    )
    infusion.refresh_from_db()
    assert infusion.infusion_date == date(2025, 3, 2)


def test_an_infusion_moved_after_the_relapse_is_shown_back(clinician_client, infusion):
    EventFactory(patient=infusion.patient, kind="relapse", event_date=date(2025, 6, 1))
    response = clinician_client.post(
        f"/patients/CT-0001/infusion/{infusion.pk}/edit/",
        _infusion_post(infusion_date="2025-07-01"),
    )
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "infusion_date") == [
        "The relapse on 01 Jun 2025 would then be before the first infusion."
    ]
    infusion.refresh_from_db()
    assert infusion.infusion_date == date(2025, 3, 1)


def test_a_clinician_deletes_an_infusion_entered_by_mistake(clinician_client, infusion):
    _saved_to(clinician_client.post(f"/patients/CT-0001/infusion/{infusion.pk}/delete/"))
    assert not Infusion.objects.filter(pk=infusion.pk).exists()


# Sample entry: one collection date, several analytes -----------------------------------------


def test_a_sample_with_two_analytes_saves_both_at_one_collection_time(
    clinician_client, clinician, infused_patient
):
    data = sample_data(
        "2025-03-15",
        "08:30",
        "flow cytometry",
        pb_bcell_abs=("", units.CELLS_PER_UL, units.UNDETECTABLE),
        alc=("1.2", units.GIGA_PER_L, ""),
    )
    _saved_to(clinician_client.post("/patients/CT-0001/samples/add/", data))
    results = {r.analyte: r for r in LabResult.objects.filter(patient=infused_patient)}
    assert set(results) == {units.PB_BCELL_ABS, units.ALC}
    sampled = datetime(2025, 3, 15, 8, 30, tzinfo=BERLIN)  # the center's time zone
    assert {r.collected_at for r in results.values()} == {sampled}
    assert results[units.PB_BCELL_ABS].qualifier == units.UNDETECTABLE
    assert results[units.PB_BCELL_ABS].value is None
    assert results[units.ALC].canonical_value == Decimal(1200)
    assert {r.method for r in results.values()} == {"flow cytometry"}
    assert {r.entered_by for r in results.values()} == {clinician}


def test_a_sample_of_a_shanghai_patient_is_timed_in_shanghai(
    clinician_client, clinician, other_center
):
    clinician.profile.center = other_center
    clinician.profile.save()
    patient = PatientFactory(center=other_center, study_id="CT-0200")
    InfusionFactory(patient=patient)
    _saved_to(
        clinician_client.post(
            "/patients/CT-0200/samples/add/", sample_data("2025-03-15", "08:00", pb_bcell_abs="3")
        ),
        "CT-0200",
    )
    assert patient.lab_results.get().collected_at == datetime(2025, 3, 15, 0, 0, tzinfo=UTC)


def test_a_sample_with_one_bad_analyte_is_shown_back_and_nothing_is_saved(
    clinician_client, infused_patient
):
    data = sample_data(
        "2025-03-15", pb_bcell_abs="0", alc=("1.2", units.GIGA_PER_L, ""), pb_bcell_pct="120"
    )
    response = clinician_client.post("/patients/CT-0001/samples/add/", data)
    assert response.status_code == 200
    page = response.content.decode()
    assert sample_row_errors(page, "pb_bcell_pct") == ["A percentage cannot be over 100."]
    assert sample_row_errors(page, "alc") == []
    assert sample_row_errors(page, "pb_bcell_abs") == []
    # What was typed is kept, so only the bad value needs retyping.
    assert input_value(page, "alc-value") == "1.2"
    assert not LabResult.objects.exists()


def test_a_value_with_a_qualifier_is_shown_in_the_analytes_row(clinician_client, infused_patient):
    data = sample_data("2025-03-15", pb_bcell_abs=("0", units.CELLS_PER_UL, units.UNDETECTABLE))
    response = clinician_client.post("/patients/CT-0001/samples/add/", data)
    assert response.status_code == 200
    assert sample_row_errors(response.content.decode(), "pb_bcell_abs") == [
        "Give either a value or a qualifier, not both: an undetectable result is stored as a "
        "qualifier, never as a number."
    ]
    assert not LabResult.objects.exists()


def test_a_negative_count_is_refused_by_the_form(clinician_client, infused_patient):
    response = clinician_client.post(
        "/patients/CT-0001/samples/add/", sample_data("2025-03-15", alc="-1")
    )
    assert response.status_code == 200
    assert sample_row_errors(response.content.decode(), "alc") == ["A value cannot be negative."]
    assert not LabResult.objects.exists()


def test_an_empty_sample_asks_for_at_least_one_result(clinician_client, infused_patient):
    response = clinician_client.post("/patients/CT-0001/samples/add/", sample_data("2025-03-15"))
    assert response.status_code == 200
    assert form_errors(response.content.decode()) == [
        "Enter at least one result: a value or a qualifier."
    ]
    assert not LabResult.objects.exists()


def test_a_future_collection_date_is_shown_beside_the_date_field(clinician_client, infused_patient):
    response = clinician_client.post(
        "/patients/CT-0001/samples/add/", sample_data("2025-11-04", pb_bcell_abs="0")
    )
    assert response.status_code == 200
    assert not LabResult.objects.exists()
    page = response.content.decode()
    assert "The collection time is in the future." in page
    # Beside the date the clinician typed, not only in the box above the form, with the date as
    # it was read and its day (issue 23).
    assert field_errors(page, "collected_date") == [
        "The collection time is in the future.",
        "The collection date is after today. Read as 4 Nov 2025, day 248 after the infusion of "
        "1 Mar 2025; if you meant 11 Apr 2025, check the order of day and month in the date field.",
    ]


def test_a_duplicate_sample_is_shown_back_and_nothing_is_saved(clinician_client, infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=datetime(2025, 3, 15, 8, tzinfo=BERLIN))
    data = sample_data("2025-03-15", "08:00", pb_bcell_abs="4", alc="900")
    response = clinician_client.post("/patients/CT-0001/samples/add/", data)
    assert response.status_code == 200
    assert "already recorded for this patient" in response.content.decode()
    assert LabResult.objects.count() == 1


# Lab correction ------------------------------------------------------------------------------


def _lab_post(result, **changes):
    data = {
        "analyte": result.analyte,
        "collected_at": result.collected_at.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M"),
        "value": "" if result.value is None else str(result.value),
        "unit": result.unit,
        "qualifier": result.qualifier,
        "method": result.method,
    }
    data.update(changes)
    return data


@pytest.fixture
def bcell_count(infused_patient):
    return LabResultFactory(
        patient=infused_patient,
        value=Decimal(0),
        collected_at=datetime(2025, 3, 15, 8, tzinfo=BERLIN),
    )


def test_a_clinician_corrects_a_lab_value(clinician_client, bcell_count):
    _saved_to(
        clinician_client.post(
            f"/patients/CT-0001/lab/{bcell_count.pk}/edit/",
            _lab_post(bcell_count, value="0.012", unit=units.GIGA_PER_L),
        )
    )
    bcell_count.refresh_from_db()
    assert (bcell_count.value, bcell_count.unit) == (Decimal("0.012"), units.GIGA_PER_L)
    assert bcell_count.canonical_value == Decimal(12)  # the stored count follows the correction


def test_a_lab_correction_to_a_wrong_unit_is_shown_back(clinician_client, bcell_count):
    response = clinician_client.post(
        f"/patients/CT-0001/lab/{bcell_count.pk}/edit/",
        _lab_post(bcell_count, value="3", unit=units.PERCENT_LYMPHOCYTES),
    )
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "unit") == [
        "% of lymphocytes is not a unit of PB B cells (CD19+), absolute; "
        "use cells/µL, ×10⁹/L, ×10⁶/L."
    ]
    bcell_count.refresh_from_db()
    assert (bcell_count.value, bcell_count.unit) == (Decimal(0), units.CELLS_PER_UL)


def test_correcting_a_shanghai_result_shows_and_keeps_its_time_in_shanghai(
    client, stranger, other_center
):
    # Day counts and the sample form use the center's time zone; the correction form must
    # too, or a Shanghai clinician sees (and saves) the collection time in Berlin time.
    patient = PatientFactory(center=other_center, study_id="CT-0200")
    InfusionFactory(patient=patient)
    collected = datetime(2025, 3, 15, 6, 0, tzinfo=SHANGHAI)  # 14 Mar, 23:00 in Berlin
    result = LabResultFactory(patient=patient, collected_at=collected)
    client.force_login(stranger)  # a hematologist at the Shanghai center
    form = client.get(f"/patients/CT-0200/lab/{result.pk}/edit/").content.decode()
    assert input_value(form, "collected_at") == "2025-03-15T06:00"
    data = _lab_post(result, collected_at="2025-03-15T06:00", value="2")
    _saved_to(client.post(f"/patients/CT-0200/lab/{result.pk}/edit/", data), "CT-0200")
    result.refresh_from_db()
    assert result.collected_at == collected


# Response, event, therapy --------------------------------------------------------------------


def test_a_clinician_records_and_corrects_a_response(clinician_client, infused_patient):
    _saved_to(
        clinician_client.post(
            "/patients/CT-0001/response/add/",
            {"assessed_on": "2025-03-29", "response": "CRi", "mrd_status": "negative", "notes": ""},
        )
    )
    response = ResponseAssessment.objects.get(patient=infused_patient)
    assert (response.assessed_on, response.response) == (date(2025, 3, 29), "CRi")
    _saved_to(
        clinician_client.post(
            f"/patients/CT-0001/response/{response.pk}/edit/",
            {"assessed_on": "2025-03-29", "response": "CR", "mrd_status": "negative", "notes": ""},
        )
    )
    response.refresh_from_db()
    assert response.response == "CR"


def test_a_response_assessed_tomorrow_is_shown_back(clinician_client, infused_patient):
    page = clinician_client.post(
        "/patients/CT-0001/response/add/",
        {"assessed_on": "2025-11-04", "response": "CR", "mrd_status": "negative"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "assessed_on") == [
        "The assessment date 04 Nov 2025 is in the future."
    ]
    assert not ResponseAssessment.objects.exists()


def test_a_correction_of_a_response_to_before_birth_is_refused(clinician_client, infused_patient):
    response = ResponseFactory(patient=infused_patient)
    page = clinician_client.post(
        f"/patients/CT-0001/response/{response.pk}/edit/",
        {"assessed_on": "1990-01-01", "response": "CR", "mrd_status": "negative"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "assessed_on") == [
        "The assessment date 01 Jan 1990 is before the patient's birth (17 May 1990)."
    ]
    response.refresh_from_db()
    assert response.assessed_on == date(2025, 3, 29)


def test_a_clinician_records_and_corrects_a_relapse(clinician_client, infused_patient):
    _saved_to(
        clinician_client.post(
            "/patients/CT-0001/event/add/",
            {
                "kind": "relapse",
                "event_date": "2025-09-10",
                "relapse_cd19": "negative",
                "relapse_site": "bone marrow",
            },
        )
    )
    relapse = ClinicalEvent.objects.get(patient=infused_patient)
    assert (relapse.kind, relapse.event_date, relapse.relapse_cd19) == (
        "relapse",
        date(2025, 9, 10),
        "negative",
    )
    _saved_to(
        clinician_client.post(
            f"/patients/CT-0001/event/{relapse.pk}/edit/",
            {
                "kind": "relapse",
                "event_date": "2025-09-08",
                "relapse_cd19": "negative",
                "relapse_site": "CNS",
            },
        )
    )
    relapse.refresh_from_db()
    assert (relapse.event_date, relapse.relapse_site) == (date(2025, 9, 8), "CNS")


def test_a_relapse_before_the_infusion_is_shown_back(clinician_client, infused_patient):
    page = clinician_client.post(
        "/patients/CT-0001/event/add/",
        {"kind": "relapse", "event_date": "2025-02-01", "relapse_cd19": "positive"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "event_date") == [
        "A relapse cannot be before the first infusion (01 Mar 2025)."
    ]
    assert not ClinicalEvent.objects.exists()


def test_a_correction_moving_a_death_before_the_infusion_is_refused(
    clinician_client, infused_patient
):
    death = EventFactory(patient=infused_patient, kind="death", event_date=date(2025, 8, 1))
    page = clinician_client.post(
        f"/patients/CT-0001/event/{death.pk}/edit/",
        {"kind": "death", "event_date": "2025-02-01", "death_cause": "infection"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "event_date") == [
        "A death cannot be before the first infusion (01 Mar 2025)."
    ]
    death.refresh_from_db()
    assert death.event_date == date(2025, 8, 1)


def test_a_clinician_records_and_corrects_pre_emptive_therapy(clinician_client, infused_patient):
    _saved_to(
        clinician_client.post(
            "/patients/CT-0001/therapy/add/",
            {
                "start_date": "2025-04-10",
                "category": "anti_leukemic",
                "agent": "targeted",
                "agent_detail": "blinatumomab",
            },
        )
    )
    therapy = PreemptiveTherapy.objects.get(patient=infused_patient)
    assert (therapy.agent, therapy.agent_detail) == ("targeted", "blinatumomab")
    _saved_to(
        clinician_client.post(
            f"/patients/CT-0001/therapy/{therapy.pk}/edit/",
            {
                "start_date": "2025-04-12",
                "category": "anti_leukemic",
                "agent": "targeted",
                "agent_detail": "inotuzumab ozogamicin",
            },
        )
    )
    therapy.refresh_from_db()
    assert (therapy.start_date, therapy.agent_detail) == (
        date(2025, 4, 12),
        "inotuzumab ozogamicin",
    )


def test_interferon_filed_as_anti_leukemic_is_shown_back(clinician_client, infused_patient):
    page = clinician_client.post(
        "/patients/CT-0001/therapy/add/",
        {"start_date": "2025-04-10", "category": "anti_leukemic", "agent": "interferon"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "category") == [
        "Interferon is immunomodulatory therapy."
    ]
    assert not PreemptiveTherapy.objects.exists()


def test_a_correction_of_a_therapy_to_a_mismatched_category_is_refused(
    clinician_client, infused_patient
):
    therapy = TherapyFactory(patient=infused_patient, agent="il2", category="immunomodulatory")
    page = clinician_client.post(
        f"/patients/CT-0001/therapy/{therapy.pk}/edit/",
        {"start_date": "2025-04-10", "category": "anti_leukemic", "agent": "il2"},
    )
    assert page.status_code == 200
    assert field_errors(page.content.decode(), "category") == [
        "Interleukin-2 is immunomodulatory therapy."
    ]
    therapy.refresh_from_db()
    assert therapy.category == "immunomodulatory"
