"""The bulk timeline reader gives exactly the per-patient path's values.

On PostgreSQL `timelines_read` reads each collection time as whole microseconds since the epoch
(psycopg reads an integer in C, where it parses a timestamptz's text in Python) and builds the
datetime itself: the datetimes must equal Django's own, with the same zone, to the microsecond,
and the local dates must be the same, around midnight and the clock changes of both centers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring.selectors import patient_timeline, timelines_read
from patients.models import LabResult
from tests.factories import InfusionFactory, LabResultFactory, PatientFactory

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")

MOMENTS = [
    datetime(2025, 3, 8, 23, 59, 59, 999999, tzinfo=BERLIN),  # the last microsecond of a day
    datetime(2025, 3, 9, 0, 0, tzinfo=BERLIN),
    datetime(2025, 3, 30, 0, 59, 59, 999999, tzinfo=UTC),  # just before spring forward
    datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
    datetime(2025, 10, 26, 2, 30, fold=0, tzinfo=BERLIN),  # the autumn hour, twice
    datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN),
    datetime(2025, 4, 1, 15, 59, 59, 1, tzinfo=UTC),  # 23:59:59 in Shanghai
    datetime(2025, 4, 1, 16, 0, tzinfo=UTC),  # midnight in Shanghai
    datetime(2025, 5, 2, 7, 15, 30, 250000, tzinfo=SHANGHAI),
]


@pytest.fixture
def patients(center, other_center):
    made = []
    for home in (center, other_center):
        patient = PatientFactory(center=home)
        InfusionFactory(patient=patient)
        for moment in MOMENTS:
            LabResultFactory(patient=patient, collected_at=moment)
        made.append(patient)
    return made


def test_the_bulk_reader_gives_the_per_patient_timelines(patients):
    read = timelines_read([p.pk for p in patients])
    assert [r.patient_id for r in read] == [p.pk for p in patients]
    for patient, bulk in zip(patients, read, strict=True):
        assert bulk.timeline == patient_timeline(patient)
        assert repr(bulk.timeline) == repr(patient_timeline(patient))


def test_collection_times_are_djangos_own_values_with_their_zone(patients):
    stored = dict(LabResult.objects.values_list("pk", "collected_at"))
    for bulk in timelines_read([p.pk for p in patients]):
        assert len(bulk.timeline.results) == len(MOMENTS)
        for result in bulk.timeline.results:
            assert result.collected_at == stored[result.id]
            assert result.collected_at.tzinfo is stored[result.id].tzinfo
            assert result.collected_at.utcoffset() == stored[result.id].utcoffset()


def test_local_dates_follow_each_centers_zone(patients):
    berlin, shanghai = (read.timeline for read in timelines_read([p.pk for p in patients]))
    assert [r.collected_on for r in berlin.results] == sorted(
        m.astimezone(BERLIN).date() for m in MOMENTS
    )
    assert [r.collected_on for r in shanghai.results] == sorted(
        m.astimezone(SHANGHAI).date() for m in MOMENTS
    )
