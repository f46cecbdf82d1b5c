"""The data version must change whenever committed data that the analysis reads changes.

``data_version()`` dates the data by its newest audit row of the clinical models and of the rule
parameters. Two ways it misses a change:

* An audit row's ``history_date`` is the moment the row was *saved*, not committed: a save that
  commits after a later, quicker one (two requests in parallel, or one slow transaction) adds an
  audit row older than the newest, so the version does not move, and a snapshot computed in
  between stays "up to date" without that change. Real transactions in two threads show it.
* A center's time zone decides every lab's day (CLINICAL.md 3), but centers are not among the
  audited models it reads.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from analytics import services
from analytics.dataset import CohortFilter, analysis_frame
from patients.services import clinical_record_save
from tests.analytics.test_dataset import infused_patient, on
from tests.factories import CenterFactory, EventFactory, LabResultFactory, ResponseFactory


@pytest.mark.django_db(transaction=True)
def test_change_committed_after_a_later_change_makes_the_snapshot_stale():
    slow = infused_patient(study_id="CT-SLOW", responses=(), followup=100)
    quick = infused_patient(study_id="CT-QUICK", followup=100)

    saved, release, failures = threading.Event(), threading.Event(), []

    def slow_request():  # e.g. a response entered while the server is busy
        try:
            with transaction.atomic():
                # Through the write path, as a request does: the patient stays locked until
                # the commit, so the snapshot leaves its stored row to this writer.
                clinical_record_save(
                    instance=ResponseFactory.build(patient=slow, assessed_on=on(28), response="CR"),
                    user=None,
                )
                saved.set()
                assert release.wait(10)
        except Exception as error:  # reported by the assertion below
            failures.append(error)
            saved.set()
        finally:
            connection.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    assert saved.wait(10)
    EventFactory(patient=quick, kind="relapse", event_date=on(90))  # saved and committed later
    snapshot = services.snapshot_compute(options={})
    release.set()
    thread.join(10)
    assert not failures

    assert snapshot.report["cohort"]["n_complete_remission"] == 1  # CT-SLOW was not visible yet
    assert services.data_version() != snapshot.data_version, (
        "CT-SLOW's CR is committed but the snapshot without it still looks up to date"
    )
    refreshed = services.refresh_if_changed()
    assert refreshed is not None
    assert refreshed.report["cohort"]["n_complete_remission"] == 2
    assert services.latest_snapshot(CohortFilter()) == refreshed


@pytest.mark.django_db
def test_correcting_a_centers_time_zone_makes_the_snapshot_stale(frozen_now):
    """Lab days are calendar days in the center's time zone (CLINICAL.md 3), so correcting a
    center's time zone can move a count across midnight and change regen_day."""
    center = CenterFactory(code="beta", name="Center Beta", time_zone="Europe/Berlin")
    patient = infused_patient(center=center, bcells={7: None}, followup=200)
    # 20:00 UTC on day 29: day 29 in Berlin, day 30 in Shanghai.
    LabResultFactory(
        patient=patient,
        collected_at=datetime.combine(on(29), time(20, 0), tzinfo=UTC),
        value=Decimal(7),
    )
    snapshot = services.snapshot_compute(options={})
    assert analysis_frame()["regen_day"].tolist() == [29]

    frozen_now.shift(timedelta(hours=1))
    center.time_zone = "Asia/Shanghai"
    center.save()  # as the admin does; the change is audited (Center has history)
    assert analysis_frame()["regen_day"].tolist() == [30]
    assert services.data_version() != snapshot.data_version
