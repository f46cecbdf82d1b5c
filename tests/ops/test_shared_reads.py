"""carttrack.shared_reads: one read per key inside a scope, none kept after it; a joined scope
is the open one, a nested plain scope its own."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from carttrack.shared_reads import read_shared, reads_shared
from monitoring.selectors import SHARED_READ_MOST, timelines_read
from patients.models import LabResult
from patients.services import clinical_record_save
from tests.factories import InfusionFactory, PatientFactory


def test_one_read_per_key_in_a_scope_and_none_outside():
    calls: list[str] = []

    def compute(name: str):
        calls.append(name)
        return name.upper()

    assert read_shared(("k",), lambda: compute("a")) == "A"
    assert read_shared(("k",), lambda: compute("a")) == "A"
    assert calls == ["a", "a"]  # outside a scope: every call computes
    with reads_shared():
        assert read_shared(("k",), lambda: compute("b")) == "B"
        assert read_shared(("k",), lambda: compute("c")) == "B"  # the scope's first read
        with reads_shared(join=True):
            assert read_shared(("k",), lambda: compute("d")) == "B"  # joined: the same scope
        with reads_shared():
            assert read_shared(("k",), lambda: compute("e")) == "E"  # nested: its own
        assert read_shared(("k",), lambda: compute("f")) == "B"
    with reads_shared():
        assert read_shared(("k",), lambda: compute("g")) == "G"  # nothing kept from before
    assert calls == ["a", "a", "b", "e", "g"]


@pytest.mark.django_db
def test_a_write_after_a_scope_is_read_by_the_next(center, django_assert_num_queries):
    """The timelines a write's receivers shared are not reused by the next write's: each
    announcement reads the records as they are then."""
    patient = PatientFactory(center=center)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    with reads_shared():
        first = timelines_read([patient.pk])
        with django_assert_num_queries(0):
            assert timelines_read([patient.pk]) == first
    result = LabResult(
        patient=patient,
        analyte="pb_bcell_abs",
        specimen="PB",
        collected_at=datetime(2025, 3, 9, 8, 0, tzinfo=UTC),
        value=0,
        unit="cells/uL",
    )
    clinical_record_save(instance=result, user=None)
    with reads_shared():
        (read,) = timelines_read([patient.pk])
    assert [r.id for r in read.timeline.results] == [result.pk]
    assert not first[0].timeline.results


@pytest.mark.django_db
def test_a_bulk_read_is_never_kept(center, django_assert_max_num_queries):
    """More than SHARED_READ_MOST patients (an import's batch): read each time, so a scope never
    holds a registry's timelines."""
    ids = [PatientFactory(center=center).pk for _ in range(SHARED_READ_MOST + 1)]
    with reads_shared():
        timelines_read(ids)
        with django_assert_max_num_queries(20) as second:
            timelines_read(ids)
    assert len(second) > 0
