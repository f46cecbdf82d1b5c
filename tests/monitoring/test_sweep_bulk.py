"""The bulk sweep gives exactly the per-patient path's result, on the demo cohort.

The per-patient path (`services.alerts_sync` for each patient, one transaction each) is the
reference: the path every clinician's save takes. The bulk sweep reads many timelines per query
and writes in bulk; both decide through `alert_diff.alerts_diff`. Compared: every alert's fields
and status, its evidence and details, every status change and every notification queued.

The cohort is loaded once for the module (as test_demo_loader does) and each comparison runs in a
savepoint rolled back afterwards, so both paths start from the same state: the load's own alerts
(some closed with their outcome), or none at all (as after a bulk load).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from demo import cohort as demo
from monitoring import sweep
from monitoring.models import Alert, AlertEvent, Notification

LOADED_AT = datetime.combine(demo.DATA_CUTOFF + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
# Days inside the cohort's calendar (windows open, counts due, aplasia coming due), and after it.
SWEEP_DAYS = [date(2021, 6, 10), date(2022, 9, 20), date(2023, 11, 2), date(2026, 7, 1)]


@pytest.fixture(scope="module")
def demo_cohort(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), time_machine.travel(LOADED_AT, tick=False):
        with transaction.atomic():
            call_command("load_demo_cohort", "--no-live", stdout=StringIO())
            yield
            transaction.set_rollback(True)


def state() -> dict:
    """Everything a sweep decides, by (patient, infusion, rule) rather than by database id."""
    keys = {a.pk: (a.patient_id, a.infusion_id, a.rule) for a in Alert.objects.all()}
    return {
        "alerts": sorted(
            (
                keys[a.pk],
                a.severity,
                a.status,
                a.title,
                a.day,
                repr(a.evidence),
                repr(a.details),
                repr(a.params),
                a.rule_version,
                a.infusion_number,
                a.historical,
                a.withdrawn_reason,
                a.withdrawn_at is None,
                a.outcome,
            )
            for a in Alert.objects.all()
        ),
        "events": sorted(
            (keys[e.alert_id], e.old_status, e.new_status, e.reason, e.user_id)
            for e in AlertEvent.objects.all()
        ),
        "notifications": sorted(
            (keys[n.alert_id], n.recipient_id, n.status, n.channel)
            for n in Notification.objects.all()
        ),
    }


def outcome(*runs) -> tuple[dict, list]:
    """Run the sweeps in a savepoint; the state they leave and their counts, then roll back."""
    with transaction.atomic():
        counts = [run() for run in runs]
        result = state()
        transaction.set_rollback(True)
    return result, counts


def sweep_per_patient(*, as_of: date | None = None) -> dict[str, int]:
    """The reference: every patient through `services.alerts_sync`, one transaction each (the
    path a clinician's save takes: the alert writer with one patient). The bulk sweep must give
    exactly its result."""
    from monitoring.services import alerts_sync
    from patients.models import Patient

    counts = {"patients": 0, "changed": 0}
    for patient_id in sweep.all_patient_ids():
        with transaction.atomic():
            patient = Patient.objects.select_for_update().get(pk=patient_id)
            counts["changed"] += len(alerts_sync(patient=patient, as_of=as_of))
            counts["patients"] += 1
    return counts


def without_alerts():
    Alert.objects.all().delete()  # as after a bulk load: nothing evaluated yet


@pytest.mark.parametrize("as_of", SWEEP_DAYS)
def test_bulk_sweep_equals_the_per_patient_path(demo_cohort, db, as_of):
    per_patient, (reference,) = outcome(lambda: sweep_per_patient(as_of=as_of))
    bulk, (counts,) = outcome(lambda: sweep.sweep_all(as_of=as_of))

    assert bulk == per_patient
    assert counts == reference
    assert counts["patients"] == 55


@pytest.mark.parametrize("as_of", SWEEP_DAYS)
def test_bulk_sweep_equals_the_per_patient_path_after_a_bulk_load(demo_cohort, db, as_of):
    per_patient, _ = outcome(without_alerts, lambda: sweep_per_patient(as_of=as_of))
    bulk, (_, counts) = outcome(without_alerts, lambda: sweep.sweep_all(as_of=as_of))

    assert bulk == per_patient
    assert bulk["alerts"], "the cohort raises alerts on this day"
    assert counts["changed"] == len(bulk["alerts"])


def test_first_sweep_after_a_bulk_load_emails_only_what_is_still_news(demo_cohort, db, settings):
    """The cohort was loaded without declaring it history (a declared history import is
    tests/monitoring/test_news.py): its results arrived on LOADED_AT, so the first sweep
    e-mails only findings dated within the 60 days before that arrival whose course had not
    answered them; everything older is history (CLINICAL.md section 4; the 7-day age rule
    that made every one of them history is withdrawn)."""
    settings.ALERT_STALE_AFTER_DAYS = 60
    arrived = LOADED_AT.date()
    with transaction.atomic():
        without_alerts()
        sweep.sweep_all(as_of=date(2026, 7, 1))
        alerts = list(Alert.objects.all())
        notified = set(Notification.objects.values_list("alert_id", flat=True))
        transaction.set_rollback(True)

    assert len(alerts) > 20
    stale = [a for a in alerts if (arrived - date.fromisoformat(a.details["date"])).days > 60]
    assert stale and all(a.historical for a in stale)  # stale, if the course had not answered it
    assert any("days before it arrived" in a.history_reason for a in stale)
    assert not notified & {a.pk for a in alerts if a.historical}
    news = [a for a in alerts if not a.historical]
    assert all((arrived - date.fromisoformat(a.details["date"])).days <= 60 for a in news)


@pytest.mark.parametrize("day", [date(2022, 9, 20), date(2026, 7, 1)])
def test_the_hourly_run_next_day_equals_a_full_run(demo_cohort, db, day):
    """Only time changed since the full run: the time-sensitive patients are all that can move.

    On a day inside the cohort's calendar, records dated ahead of it select most patients
    (they become visible as their dates arrive); after the calendar, nobody's findings can
    change with the clock and the hourly run reads no timeline at all."""
    next_day = day + timedelta(days=1)
    full, _ = outcome(lambda: sweep.sweep_all(as_of=day), lambda: sweep.sweep_all(as_of=next_day))
    hourly, (_, counts) = outcome(
        lambda: sweep.sweep_all(as_of=day), lambda: sweep.sweep_time_sensitive(as_of=next_day)
    )

    assert hourly == full
    if day > demo.DATA_CUTOFF:
        assert counts["patients"] == 0
    else:
        assert 0 < counts["patients"] < 55


def test_the_hourly_run_selects_recent_infusions_only(demo_cohort, db):
    from patients.models import Infusion

    infusions = sorted(Infusion.objects.values_list("infusion_date", "patient_id"))
    last_date, last_patient = infusions[-1]
    # Nothing dated from yesterday on (the cutoff): only the infusion dates decide.
    on = demo.DATA_CUTOFF + timedelta(days=2)
    with transaction.atomic():
        Infusion.objects.filter(patient_id=last_patient).update(
            infusion_date=on - timedelta(days=47)
        )
        assert sweep.time_sensitive_patient_ids(as_of=on) == [last_patient]
        Infusion.objects.filter(patient_id=last_patient).update(
            infusion_date=on - timedelta(days=48)
        )
        assert sweep.time_sensitive_patient_ids(as_of=on) == []
        transaction.set_rollback(True)
    assert last_date < on


def test_a_batch_costs_a_constant_number_of_queries(demo_cohort, db):
    with transaction.atomic():
        without_alerts()
        with CaptureQueriesContext(connection) as raising:
            sweep.sweep_all(as_of=date(2022, 9, 20))  # creates alerts, events, notifications
        with CaptureQueriesContext(connection) as unchanged:
            sweep.sweep_all(as_of=date(2022, 9, 20))
        transaction.set_rollback(True)

    # 55 patients in one batch; the per-patient path needs about 12 queries per patient. What is
    # news reads the centers' alerting settings and the therapies (one query each), the
    # recipient policy the centers of patients without a hematologist and their clinicians.
    assert len(raising) <= 24, [q["sql"][:80] for q in raising.captured_queries]
    assert len(unchanged) <= 16, [q["sql"][:80] for q in unchanged.captured_queries]
