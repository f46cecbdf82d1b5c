"""The periodic sweep in bulk: many patients per query, evaluated in memory, only changes written.

Two runs (schedules in carttrack/celery.py):

- **hourly, time-sensitive only** (`time_sensitive_patient_ids`): the patients whose findings can
  change with the clock alone: an infusion recent enough that a B-cell count may fall due or
  "aplasia not reached by day 28" may come due (day 0 to the longest window + 2 days), or a
  record dated from yesterday on (it becomes visible to the rules as its date arrives). Every
  other change reaches the alerts through the services, in the transaction that made it.
- **nightly, everyone** (`sweep_all`): the safety net (data loaded in bulk, a missed hour).

A batch of patients costs a constant number of queries whatever its size: lock the rows, read
the timelines (`selectors.timelines_read`, one query per section), the existing alerts, then
bulk-create and bulk-update alerts, bulk-create their status changes and the notifications.
Rule parameters are read once per run, not per patient. This is the one alert writer:
`services.alerts_sync` (a clinician's save) is `alerts_sync_many` with one patient, and the
decisions are `alert_diff.alerts_diff`, with what is news decided by `monitoring.news`.

Locking: the batch's patient rows are locked with `SELECT ... FOR UPDATE SKIP LOCKED`, and the
timelines are read after the lock is held, so a clinician's save (which locks its patient's row)
is either committed before the sweep reads that patient or waits until the sweep's batch has
committed, and then re-evaluates the patient itself: no write is lost. SKIP LOCKED rather than
NOWAIT or a plain wait: a patient being edited right now does not stall the 499 others of the
batch, nor fail the whole batch; the skipped patients are swept again at the end of the chunk
with a waiting lock (they are few, and a clinician's transaction is short).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from carttrack.shared_reads import read_shared
from monitoring import notifications, recipients
from monitoring.alert_diff import DIFF_FIELDS, RAISED, AlertChange, alerts_diff
from monitoring.badge import badge_versions_bump
from monitoring.engine import evaluate
from monitoring.models import Alert, AlertEvent
from monitoring.news import NewsContext, finding_arrival
from monitoring.selectors import alerting_policies, params_in_force_for_centers, timelines_read
from patients.models import (
    Center,
    ClinicalEvent,
    Infusion,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.validation import today_in

BATCH = 500  # patients per transaction: bounded memory and lock time
CHUNK = 1000  # patients per Celery task: each free worker takes a chunk
ALL, TIME_SENSITIVE = "all", "time_sensitive"


class SweepContext:
    """What a run reads once: each center's rule parameters and today in its time zone."""

    def __init__(self, as_of: date | None = None) -> None:
        self.centers = read_shared(("centers",), lambda: list(Center.objects.all()))
        # The center's current set, else the registry-wide one, else the defaults: the one
        # resolver (selectors.params_in_force_for_centers), in one query.
        in_force = params_in_force_for_centers([c.pk for c in self.centers])
        self.params = {c.pk: in_force[c.pk] for c in self.centers}
        self.today = {c.pk: as_of or today_in(c.tzinfo) for c in self.centers}
        self.zones = {c.pk: c.tzinfo for c in self.centers}
        self.policies = alerting_policies([c.pk for c in self.centers])

    def horizon_days(self) -> int:
        """How many days after an infusion the clock alone can still change a finding."""
        longest = max(
            (max(p.window_days, p.aplasia_by_day) for p in self.params.values()), default=45
        )
        return longest + 2  # the day after the last one, and one missed day of sweeps


def time_sensitive_patient_ids(*, as_of: date | None = None) -> list[int]:
    """Patients whose findings can change with the clock alone (the hourly run)."""
    context = SweepContext(as_of)
    if not context.centers:
        return []
    earliest = min(context.today.values())
    recent = earliest - timedelta(days=context.horizon_days())
    ids = set(Infusion.objects.filter(infusion_date__gte=recent).values_list("patient_id"))
    # Lab results cannot be dated in the future (validation); responses and events are read too
    # in case one is dated ahead: it becomes visible to the rules on its date.
    yesterday = earliest - timedelta(days=1)
    for model, field in ((ResponseAssessment, "assessed_on"), (ClinicalEvent, "event_date")):
        ids |= set(model.objects.filter(**{f"{field}__gte": yesterday}).values_list("patient_id"))
    return sorted(pk for (pk,) in ids)


def all_patient_ids() -> list[int]:
    return list(Patient.objects.order_by("pk").values_list("pk", flat=True))


def _therapy_starts(patient_ids: list[int]) -> dict[int, tuple]:
    starts: dict[int, list] = {}
    for patient_id, on in PreemptiveTherapy.objects.filter(patient_id__in=patient_ids).values_list(
        "patient_id", "start_date"
    ):
        starts.setdefault(patient_id, []).append(on)
    return {pk: tuple(days) for pk, days in starts.items()}


def _changes_for(
    patient_ids: list[int],
    context: SweepContext,
    now: datetime,
    centers: set[int],
    *,
    notify: bool = True,
    history: bool = False,
    history_is_news: bool = False,
) -> list[AlertChange]:
    existing: dict[int, list[Alert]] = {pk: [] for pk in patient_ids}
    # The model's ordering (newest first), as patient.alerts.all() gives them.
    for alert in Alert.objects.filter(patient_id__in=patient_ids):
        existing[alert.patient_id].append(alert)
    therapies = _therapy_starts(patient_ids)
    changes: list[AlertChange] = []
    for read in timelines_read(patient_ids):
        today = context.today[read.center_id]
        params = context.params[read.center_id]
        news = NewsContext(
            today=today,
            now=now,
            tz=context.zones[read.center_id],
            stale_after_days=context.policies[read.center_id].stale_after_days,
            declared_history=history,
            therapy_starts=therapies.get(read.patient_id, ()),
        )

        def arrival(finding, timeline=read.timeline, news=news):
            return finding_arrival(finding, timeline, news)

        patient_changes = alerts_diff(
            patient_id=read.patient_id,
            findings=evaluate(read.timeline, params, as_of=today),
            existing=existing[read.patient_id],
            params=params,
            result_ids={r.id for r in read.timeline.results},
            arrival=None if history_is_news else arrival,
            notify=notify,
            now=now,
        )
        if patient_changes:
            centers.add(read.center_id)
            changes += patient_changes
    return changes


def alerts_sync_many(
    *,
    patient_ids: Iterable[int],
    as_of: date | None = None,
    notify: bool = True,
    history: bool = False,
    history_is_news: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[AlertChange]:
    """Make these patients' alerts match what the rules find now: the one alert writer (an
    import's affected patients, a clinician's save through `services.alerts_sync`, the sweep's
    batches). Timelines are read in batches of BATCH per query, evaluated in memory, the
    changes written in bulk. The caller holds the patients' row locks in its transaction.

    `history`: the data came in an import declared as history, so whatever it raises is
    history; otherwise `monitoring.news` decides per finding. `history_is_news` (the synthetic
    demo): nothing is history and no arrival is recorded."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("alerts_sync_many runs inside the caller's transaction")
    ids = sorted(set(patient_ids))
    context = SweepContext(as_of)
    now = timezone.now()
    centers: set[int] = set()
    changes: list[AlertChange] = []
    for start in range(0, len(ids), BATCH):
        batch = _changes_for(
            ids[start : start + BATCH],
            context,
            now,
            centers,
            notify=notify,
            history=history,
            history_is_news=history_is_news,
        )
        changes_apply(batch, now=now)
        changes += batch
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))
    badge_versions_bump(centers)
    return changes


def changes_apply(changes: list[AlertChange], *, now: datetime) -> int:
    """Write a plan in bulk: a constant number of queries. Returns the notifications recorded."""
    raised = [c.alert for c in changes if c.kind == RAISED]
    Alert.objects.bulk_create(raised, batch_size=2000)
    touched = [c.alert for c in changes if c.kind != RAISED]
    for alert in touched:
        alert.updated_at = now  # bulk_update does not apply auto_now
    Alert.objects.bulk_update(touched, [*DIFF_FIELDS, "updated_at"], batch_size=2000)
    AlertEvent.objects.bulk_create(
        [
            AlertEvent(
                alert=c.alert,
                old_status=c.old_status,
                new_status=c.alert.status,
                reason=c.reason[:500],
            )
            for c in changes
            if c.status_changed
        ],
        batch_size=2000,
    )
    recorded = recipients.notifications_record_many(
        alerts=[c.alert for c in changes if c.notify]
    )
    if recorded:
        notifications.send_after_commit()
    return len(recorded)


def _sweep_batch(
    patient_ids: list[int], context: SweepContext, counts: dict, *, wait: bool
) -> list[int]:
    """Sweep one batch in one transaction; returns the ids skipped because they were locked."""
    with transaction.atomic():
        rows = Patient.objects.select_for_update(skip_locked=not wait).filter(pk__in=patient_ids)
        locked = list(rows.order_by("pk").values_list("pk", flat=True))
        now = timezone.now()
        centers: set[int] = set()
        changes = _changes_for(locked, context, now, centers)
        counts["notifications"] += changes_apply(changes, now=now)
        badge_versions_bump(centers)
    counts["patients"] += len(locked)
    counts["changed"] += len(changes)
    return sorted(set(patient_ids) - set(locked))


def sweep_patients(
    patient_ids: Iterable[int], *, as_of: date | None = None, context: SweepContext | None = None
) -> dict[str, int]:
    """Re-evaluate these patients in batches. Idempotent for one day and unchanged data."""
    context = context or SweepContext(as_of)
    ids = sorted(set(patient_ids))
    counts = {"patients": 0, "changed": 0, "notifications": 0, "skipped": 0}
    skipped: list[int] = []
    for start in range(0, len(ids), BATCH):
        skipped += _sweep_batch(ids[start : start + BATCH], context, counts, wait=False)
    counts["skipped"] = len(skipped)
    for start in range(0, len(skipped), BATCH):  # their clinician's transaction is done soon
        _sweep_batch(skipped[start : start + BATCH], context, counts, wait=True)
    return counts


def sweep_chunks(*, scope: str, as_of: date | None = None, size: int = CHUNK) -> list[list[int]]:
    """The patients a run covers, in chunks of `size` (one Celery task each)."""
    if scope == ALL:
        ids = all_patient_ids()
    elif scope == TIME_SENSITIVE:
        ids = time_sensitive_patient_ids(as_of=as_of)
    else:
        raise ValueError(f"unknown sweep scope {scope!r}")
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def sweep_all(*, as_of: date | None = None) -> dict[str, int]:
    """The nightly safety run: every patient. Returns {"patients", "changed"}."""
    counts = sweep_patients(all_patient_ids(), as_of=as_of)
    return {"patients": counts["patients"], "changed": counts["changed"]}


def sweep_time_sensitive(*, as_of: date | None = None) -> dict[str, int]:
    """The hourly run: only the patients whose findings the clock can change."""
    counts = sweep_patients(time_sensitive_patient_ids(as_of=as_of), as_of=as_of)
    return {"patients": counts["patients"], "changed": counts["changed"]}
