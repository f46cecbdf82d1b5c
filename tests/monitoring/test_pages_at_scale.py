"""Pages at registry scale: the same number of SQL queries for 5 and for 5,000 patients, and an
alert badge that does not count the alert table on every page.

The registry is stored with bulk_create (each patient an infusion, two B-cell counts and an open
alert, as a sweep would leave them); one patient has 500 results.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import Alert
from patients.models import Infusion, LabResult, Patient
from patients.units import CELLS_PER_UL, PB, PB_BCELL_ABS
from tests.factories import BERLIN

PAGES = ["/patients/", "/patients/CT-BIG/", "/alerts/", "/dashboard/"]


def _registry(center, clinician, start: int, size: int) -> None:
    patients = Patient.objects.bulk_create(
        [Patient(center=center, study_id=f"CT-{i:05d}") for i in range(start, start + size)]
    )
    infusions = Infusion.objects.bulk_create(
        [Infusion(patient=p, infusion_date=date(2025, 3, 1), infusion_number=1) for p in patients]
    )
    LabResult.objects.bulk_create(
        [
            _count(p, datetime(2025, 3, day, 8, tzinfo=BERLIN), Decimal(day % 2))
            for p in patients
            for day in (8, 15)
        ]
    )
    Alert.objects.bulk_create(
        [
            Alert(
                patient=p,
                infusion=i,
                infusion_number=1,
                rule="early_regeneration",
                severity="high",
                title="Early B-cell regeneration",
                day=14,
                rule_version="default-1",
            )
            for p, i in zip(patients, infusions, strict=True)
        ]
    )
    Patient.hematologists.through.objects.bulk_create(
        [Patient.hematologists.through(patient=p, user=clinician) for p in patients]
    )


def _count(patient, at, value):
    return LabResult(
        patient=patient,
        analyte=PB_BCELL_ABS,
        specimen=PB,
        collected_at=at,
        value=value,
        unit=CELLS_PER_UL,
        canonical_value=value,
        canonical_unit=CELLS_PER_UL,
    )


def _page_queries(client) -> dict[str, int]:
    counts = {}
    for url in PAGES:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, url
        counts[url] = len(captured)
    return counts


@pytest.mark.parametrize("page", PAGES)
def test_a_page_takes_as_many_queries_for_5000_patients_as_for_5(
    clinician_client, center, clinician, django_assert_max_num_queries, page
):
    big = Patient.objects.create(center=center, study_id="CT-BIG")
    Infusion.objects.create(patient=big, infusion_date=date(2025, 1, 1), infusion_number=1)
    start = datetime(2025, 1, 2, 8, tzinfo=BERLIN)
    LabResult.objects.bulk_create(
        [_count(big, start + timedelta(hours=12 * n), Decimal(n % 3)) for n in range(500)]
    )
    _registry(center, clinician, 0, 4)
    clinician_client.get(page)  # warm the session and permission caches
    with CaptureQueriesContext(connection) as five:
        assert clinician_client.get(page).status_code == 200
    _registry(center, clinician, 4, 4995)
    assert Patient.objects.count() == 5000

    with django_assert_max_num_queries(len(five)):
        assert clinician_client.get(page).status_code == 200


def _badge(response):
    (alerts,) = [item for item in response.context["nav_items"] if item["label"] == "Alerts"]
    return alerts["badge"]


def test_the_badge_is_counted_once_until_an_alert_changes(clinician_client, center, clinician):
    from monitoring.services import alert_acknowledge

    _registry(center, clinician, 0, 3)
    assert _badge(clinician_client.get("/alerts/")) == 3

    def counts_alerts(response_queries) -> int:
        return sum(
            'FROM "monitoring_alert"' in q["sql"] and "COUNT(" in q["sql"].upper()
            for q in response_queries
        )

    with CaptureQueriesContext(connection) as cached:
        page = clinician_client.get("/patients/")
    assert counts_alerts(cached.captured_queries) == 0
    assert _badge(page) == 3

    one, two, three = Alert.objects.order_by("pk")
    Alert.objects.filter(pk__in=[one.pk, two.pk]).update(status="closed")  # not a service
    page = clinician_client.get("/patients/")
    assert _badge(page) == 3  # cached until a service changes one
    alert_acknowledge(alert=three, user=clinician)  # still active, but a change

    with CaptureQueriesContext(connection) as recounted:
        page = clinician_client.get("/patients/")
    assert counts_alerts(recounted.captured_queries) == 2
    assert _badge(page) == 1
