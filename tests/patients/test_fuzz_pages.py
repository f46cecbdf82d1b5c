"""Hypothesis over every form of the pages and their query parameters: zero server errors, and a
refused form saves nothing (rows counted before and after)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import units
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from tests.fuzz_counts import record
from tests.fuzz_strategies import dates, numbers_as_typed, qualifiers, typed_text, unit_codes

pytestmark = pytest.mark.usefixtures("frozen_now")
FUZZ = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
MODELS = [Patient, Infusion, LabResult, ResponseAssessment, ClinicalEvent, PreemptiveTherapy]


def rows() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


sample_post = st.fixed_dictionaries(
    {
        "collected_date": dates,
        "collected_time": st.one_of(st.sampled_from(["08:30", "23:59", "02:30"]), typed_text),
        "method": st.one_of(st.just(""), typed_text),
        "confirm": st.sampled_from(["", "on"]),
        "confirmed_values": st.one_of(st.just(""), typed_text),
        **{
            f"{code}-value": st.one_of(st.just(""), st.just(""), numbers_as_typed)
            for code in units.ANALYTES
        },
        **{
            f"{code}-unit": st.one_of(st.just(a.canonical_unit), unit_codes)
            for code, a in units.ANALYTES.items()
        },
        **{f"{code}-qualifier": qualifiers for code in units.ANALYTES},
    }
)


# Mostly-valid samples too, so that fuzzing reaches the clinical checks and the saving.
good_sample_post = st.fixed_dictionaries(
    {
        "collected_date": st.dates(min_value=date(2025, 3, 2), max_value=date(2025, 10, 31)).map(
            str
        ),
        "collected_time": st.sampled_from(["08:30", "23:59", "00:00"]),
        "method": st.just(""),
        "confirm": st.sampled_from(["", "on"]),
        "confirmed_values": st.just(""),
        **{
            f"{code}-value": st.sampled_from(["", "", "", "0", "0,9", "0.5", "15", "2500"])
            for code in units.ANALYTES
        },
        **{f"{code}-unit": st.just(a.canonical_unit) for code, a in units.ANALYTES.items()},
        **{f"{code}-qualifier": st.just("") for code in units.ANALYTES},
    }
)


def test_the_sample_form_saves_whole_samples_or_nothing(clinician_client, infused_patient):
    seen = {"cases": 0, "saved": 0, "shown_again": 0}

    @FUZZ
    @given(data=st.one_of(good_sample_post, sample_post))
    def post(data):
        seen["cases"] += 1
        before = rows()
        response = clinician_client.post("/patients/CT-0001/samples/add/", data)
        after = rows()
        assert response.status_code in (200, 302)
        entered = sum(
            1 for code in units.ANALYTES if data[f"{code}-value"] or data[f"{code}-qualifier"]
        )
        if response.status_code == 302:
            seen["saved"] += 1
            assert after["LabResult"] - before["LabResult"] == entered
        else:
            seen["shown_again"] += 1
            assert after == before

    post()
    record(
        "hypothesis_sample_form",
        seen["cases"],
        saved=seen["saved"],
        shown_again=seen["shown_again"],
    )
    assert seen["cases"] >= 80 and seen["saved"] > 0 and seen["shown_again"] > 0


def field(*good):
    return st.one_of(st.sampled_from(list(good)), typed_text)


RECORD_FORMS = {
    "/patients/new/": {
        "study_id": field("CT-0500", "ct-0001", "A/1", "new"),
        "center": field("1", "2"),
        "sex": field("F", "M", "U"),
        "date_of_birth": dates,
        "diagnosis": typed_text,
        "mrn": typed_text,
        "full_name": typed_text,
    },
    "/patients/CT-0001/infusion/add/": {
        "infusion_number": field("1", "2", "0", "-1", "99999999"),
        "infusion_date": dates,
        "product": field("tisagenlecleucel"),
        "target_antigen": field("CD19"),
        "dose_cells_per_kg": numbers_as_typed,
        "lymphodepletion": typed_text,
    },
    "/patients/CT-0001/response/add/": {
        "assessed_on": dates,
        "response": field("CR", "PR", "NR"),
        "mrd_status": field("negative", "positive"),
        "notes": typed_text,
    },
    "/patients/CT-0001/event/add/": {
        "kind": field("relapse", "death", "hsct", "last_followup"),
        "event_date": dates,
        "relapse_cd19": field("", "positive"),
        "relapse_site": typed_text,
        "death_cause": typed_text,
        "notes": typed_text,
    },
    "/patients/CT-0001/therapy/add/": {
        "start_date": dates,
        "category": field("anti_leukemic", "immunomodulatory", "other"),
        "agent": field("chemotherapy", "interferon", "il2", "other"),
        "agent_detail": typed_text,
        "notes": typed_text,
    },
}


@pytest.mark.parametrize("url", list(RECORD_FORMS))
def test_every_record_form_saves_one_record_or_nothing(clinician_client, infused_patient, url):
    seen = {"cases": 0, "saved": 0}

    @FUZZ
    @given(data=st.fixed_dictionaries(RECORD_FORMS[url]))
    def post(data):
        seen["cases"] += 1
        before = rows()
        response = clinician_client.post(url, data)
        after = rows()
        assert response.status_code in (200, 302)
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        if response.status_code == 302:
            seen["saved"] += 1
            assert list(changed.values()) == [1]
        else:
            assert changed == {}

    post()
    record(f"hypothesis_form {url}", seen["cases"], saved=seen["saved"])
    assert seen["cases"] >= 80


PAGES = [
    "/patients/",
    "/patients/CT-0001/",
    "/patients/CT-0001/history/",
    "/alerts/",
    "/dashboard/",
    "/dashboard/export.csv",
    "/dashboard/data-dictionary/",
    "/alerts/preferences/",
]


def test_any_query_parameter_of_any_page_is_answered_not_a_server_error(
    clinician_client, infused_patient
):
    seen = {"cases": 0}

    @FUZZ
    @given(
        url=st.sampled_from(PAGES),
        query=st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "q",
                        "page",
                        "status",
                        "severity",
                        "center",
                        "snapshot",
                        "format",
                        "product",
                        "infused_from",
                        "infused_to",
                        "run",
                    ]
                ),
                typed_text,
            ),
            typed_text,
            max_size=3,
        ),
    )
    def get(url, query):
        seen["cases"] += 1
        response = clinician_client.get(url, query)
        assert response.status_code in (200, 302, 400, 404), (url, query, response.status_code)

    get()
    record("hypothesis_page_queries", seen["cases"])
    assert seen["cases"] >= 80


def test_the_lab_correction_and_alert_forms_answer_any_input(clinician_client, infused_patient):
    from monitoring.models import Alert, AlertEvent
    from tests.monitoring.test_notifications import raise_early_regeneration

    alert = raise_early_regeneration(infused_patient)
    lab = LabResult.objects.filter(patient=infused_patient).first()
    forms = {
        f"/patients/CT-0001/lab/{lab.pk}/edit/": {
            "analyte": field(units.PB_BCELL_ABS, units.ALC),
            "collected_at": field("2025-03-08T08:00", "2025-03-30T02:30", "2025-10-26T02:30"),
            "value": numbers_as_typed,
            "unit": st.one_of(st.just(units.CELLS_PER_UL), unit_codes),
            "qualifier": qualifiers,
            "method": typed_text,
            "plausibility_confirmed": field("", "on"),
        },
        f"/alerts/{alert.pk}/close/": {
            "outcome": field("observation", "not_relevant", "anti_leukemic_started"),
            "reason": typed_text,
            "therapy": typed_text,
            "start_date": dates,
            "agent": field("chemotherapy", "interferon"),
            "agent_detail": typed_text,
        },
        f"/alerts/{alert.pk}/acknowledge/": {"next": typed_text},
        "/alerts/preferences/": {"email_low_severity": field("on", "")},
    }
    seen = {"cases": 0}

    @FUZZ
    @given(url=st.sampled_from(list(forms)), data=st.data())
    def post(url, data):
        seen["cases"] += 1
        body = data.draw(st.fixed_dictionaries(forms[url]))
        before = rows() | {"AlertEvent": AlertEvent.objects.count()}
        response = clinician_client.post(url, body)
        assert response.status_code in (200, 302, 400), (url, body, response.status_code)
        if response.status_code != 302:
            assert rows() | {"AlertEvent": AlertEvent.objects.count()} == before

    post()
    record("hypothesis_lab_correction_and_alert_forms", seen["cases"])
    assert seen["cases"] >= 80 and Alert.objects.exists()
