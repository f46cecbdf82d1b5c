"""The sweep spreads over workers: one task per chunk of patients; beat runs it hourly for the
patients the clock can change and nightly for everyone."""

from __future__ import annotations

from datetime import date

import pytest

from carttrack.celery import app
from monitoring import sweep
from tests.factories import InfusionFactory, PatientFactory


def test_chunks_cover_every_patient_once(center):
    patients = [PatientFactory(center=center, study_id=f"CT-C{i}") for i in range(5)]
    InfusionFactory(patient=patients[3], infusion_date=date(2025, 3, 1))

    chunks = sweep.sweep_chunks(scope=sweep.ALL, size=2)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert sorted(pk for c in chunks for pk in c) == sorted(p.pk for p in patients)
    # Day 20 after the only infusion: that patient alone can change with the clock.
    assert sweep.sweep_chunks(scope=sweep.TIME_SENSITIVE, as_of=date(2025, 3, 21)) == [
        [patients[3].pk]
    ]
    with pytest.raises(ValueError):
        sweep.sweep_chunks(scope="some")


def test_beat_sweeps_hourly_the_time_sensitive_and_nightly_everyone():
    schedule = app.conf.beat_schedule
    assert schedule["sweep-alerts-hourly"]["args"] == (sweep.TIME_SENSITIVE,)
    assert schedule["sweep-alerts-nightly"]["args"] == (sweep.ALL,)
    assert schedule["sweep-alerts-hourly"]["task"] == "monitoring.tasks.sweep_alerts"
