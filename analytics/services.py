"""Dashboard snapshots: compute every analysis of a cohort and store it at once.

The whole computation happens in memory; the snapshot row is inserted only when every analysis
succeeded, in one statement, so a crash or a failing analysis leaves the previous snapshot in
place. Snapshots are never changed afterwards.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import time
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import gettext_noop
from simple_history.utils import get_history_model_for_model

from analytics.dataset import CohortFilter, analysis_csv
from analytics.dataset_schema import read_analysis_csv, read_analysis_csv_lenient
from analytics.derived import analysis_frame_stored
from analytics.disclosure import HIDE_ALL, count_cells, differencing_withheld_all
from analytics.figures import dashboard_figures
from analytics.models import DONE, FAILED, QUEUED, RUNNING, DashboardSnapshot, RefreshRun
from analytics.report import headline_report
from carttrack.queue import task_send
from carttrack.replica import replica_reads
from monitoring.models import RuleParameterSet
from patients.models import Center
from patients.selectors import AUDITED, center_code_restricted_to

logger = logging.getLogger(__name__)

# A refresh run's step and fixed errors are stored as messages in English, shown translated
# (analytics.views.run_status); an error that names the exception or a time stays as stored.
NOT_PICKED_UP = gettext_noop(
    "No worker picked it up; the previous snapshot is kept. Press Refresh now to start again."
)


def data_version() -> str:
    """A fingerprint of the clinical data, the centers and the rule parameters.

    Every create, change and delete writes an audit row, so the number of audit rows (and the
    newest row id) of each table changes with every committed change. Counting rather than
    dating them also catches a slow transaction that commits after a quicker, later one: its
    audit rows are older than the newest, but they still add to the count.
    """
    parts = []
    for model in [*AUDITED.values(), Center]:
        history = get_history_model_for_model(model)
        stats = history.objects.aggregate(n=Count("history_id"), last=Max("history_id"))
        parts.append(f"{model._meta.model_name}:{stats['n']}/{stats['last']}")
    stats = RuleParameterSet.objects.aggregate(n=Count("pk"), last=Max("pk"))
    parts.append(f"ruleparameterset:{stats['n']}/{stats['last']}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:32]


def cohort_from_options(options: dict) -> CohortFilter:
    def as_date(value):
        return date.fromisoformat(value) if value else None

    return CohortFilter(
        center=options.get("center", ""),
        product=options.get("product", ""),
        infused_from=as_date(options.get("infused_from")),
        infused_to=as_date(options.get("infused_to")),
    )


def small_cell_min_for(cohort: CohortFilter, viewer=None) -> int:
    """Counts under SMALL_CELL_MIN are hidden from every viewer except, for a one-center cohort,
    that center's own users (its hematologists see those patients anyway). Any signed-in user
    may pick any center in the dashboard's filter, so the cohort naming a center is not enough:
    another center's hematologist, registry staff and superusers see the small cells hidden."""
    if cohort.center and viewer is not None and center_code_restricted_to(viewer) == cohort.center:
        return 0
    return settings.SMALL_CELL_MIN


def fixed_cohort_view(cohort: CohortFilter) -> tuple[str, str, int | None] | None:
    """The cohort as a fixed view (center, product, calendar year or None), or None when its
    dates are not one whole calendar year (only a center's own users open such views)."""
    start, end = cohort.infused_from, cohort.infused_to
    if start is None and end is None:
        return (cohort.center, cohort.product, None)
    if (
        start is not None
        and end is not None
        and (start.month, start.day, end.month, end.day) == (1, 1, 12, 31)
        and start.year == end.year
    ):
        return (cohort.center, cohort.product, start.year)
    return None


def _registry_atoms(key: str, counts_of) -> dict[tuple[str, str, int], dict[str, int]]:
    """``counts_of(rows)`` for every atom (center x product x year of first infusion) of the
    whole registry, for the differencing rule (``analytics.disclosure``); read as the snapshots
    read it (a row breaking the schema is left out, counted there) and cached under ``key``
    with the data version, so it is computed again only when the data change."""
    from django.core.cache import cache

    key = f"{key}:{data_version()}"
    found = cache.get(key)
    if found is not None:
        return found
    # The stored rows (`analytics.derived`); computed from a page too, which writes nothing.
    table, _refused = read_analysis_csv_lenient(
        io.StringIO(analysis_csv(analysis_frame_stored(CohortFilter(), store=False)))
    )
    atoms = {}
    if len(table):
        years = table["first_infusion_date"].map(lambda d: d.year)
        for (center, product, year), rows in table.groupby(
            [table["center"], table["product"], years], sort=True
        ):
            atoms[(str(center), str(product), int(year))] = counts_of(rows.reset_index(drop=True))
    cache.set(key, atoms, 24 * 3600)
    return atoms


def disclosure_atoms(
    *, rfs_origin: str = "infusion", censor_at_hsct: bool = False
) -> dict[tuple[str, str, int], dict[str, int]]:
    """The counts of every atom's headline report (one report per atom)."""
    return _registry_atoms(
        f"disclosure-atoms:{rfs_origin}:{int(censor_at_hsct)}",
        lambda rows: count_cells(
            headline_report(rows, rfs_origin=rfs_origin, censor_at_hsct=censor_at_hsct)
        ),
    )


def withheld_cells_for(
    cohort: CohortFilter, viewer, options: dict | None = None
) -> set[str] | None:
    """Paths of the counts of a cohort's report this viewer must not see because another view
    they can open would give them away by subtraction; None: the viewer's own center's exact
    view (nothing withheld). A view that is not a fixed cohort withholds every count."""
    if small_cell_min_for(cohort, viewer) == 0:
        return None
    options = options or {}
    atoms = disclosure_atoms(
        rfs_origin=options.get("rfs_origin", "infusion"),
        censor_at_hsct=bool(options.get("censor_at_hsct", False)),
    )
    view = fixed_cohort_view(cohort)
    if view is None:
        return {path for cells in atoms.values() for path in cells} | {"*"}
    own = (center_code_restricted_to(viewer) if viewer is not None else None) or None
    return withheld_by_view(atoms, own_center=own).get(view, set())


def table_one_withheld_for(cohort: CohortFilter, viewer, *, grouping: str) -> set[str]:
    """The Table 1 counts (paths of ``publication.table_one_counts``) this viewer must not see:
    the dashboards' differencing rule applied to the publication table's own counts, computed
    on every atom (center x product x year) of the registry. Empty for the viewer's own
    center's exact view; every count for a view that is not a fixed cohort."""
    from analytics.publication import table_one_counts

    if small_cell_min_for(cohort, viewer) == 0:
        return set()
    atoms = _registry_atoms(
        f"disclosure-table-one:{grouping}",
        lambda rows: table_one_counts(rows, grouping=grouping),
    )
    view = fixed_cohort_view(cohort)
    if view is None:
        return {path for cells in atoms.values() for path in cells}
    own = (center_code_restricted_to(viewer) if viewer is not None else None) or None
    return withheld_by_view(atoms, own_center=own).get(view, set())


def withheld_by_view(atoms: dict, *, own_center: str | None) -> dict:
    """``differencing_withheld_all`` for a reader of ``own_center``, cached with the atoms."""
    from django.core.cache import cache

    centers = sorted(Center.objects.values_list("code", flat=True))
    state = f"{sorted(atoms.items())}:{centers}:{own_center}:{settings.SMALL_CELL_MIN}"
    key = "disclosure-withheld:" + hashlib.sha256(state.encode()).hexdigest()[:32]
    found = cache.get(key)
    if found is None:
        found = differencing_withheld_all(
            atoms, centers=centers, own_center=own_center, minimum=settings.SMALL_CELL_MIN
        )
        cache.set(key, found, 24 * 3600)
    return found


def snapshot_figures_for(snapshot: DashboardSnapshot, viewer) -> tuple[dict, bool]:
    """The figures of a snapshot this viewer may see, and whether they show small cells (the
    unsuppressed variant, for the cohort's own center only)."""
    cohort = cohort_from_options(snapshot.options)
    if not cohort.center:
        return snapshot.figures, False  # pooled: computed suppressed
    if small_cell_min_for(cohort, viewer) == 0:
        return snapshot.figures, True
    # A snapshot from before the suppressed variant existed has none: no figures rather than
    # the center's small cells.
    return snapshot.figures_suppressed or {}, False


def snapshot_compute(
    *, options: dict | None = None, run: RefreshRun | None = None
) -> DashboardSnapshot:
    """Compute every analysis for the cohort the options name and store one snapshot."""
    options = dict(options or {})
    cohort = cohort_from_options(options)
    rfs_origin = options.get("rfs_origin", "infusion")
    censor_at_hsct = bool(options.get("censor_at_hsct", False))
    started = time.perf_counter()

    def progress(step: str, percent: int) -> None:
        if run is not None:  # never revives a run the sweep has failed
            run.owned().update(step=step, progress=percent, heartbeat_at=timezone.now())

    progress(gettext_noop("Building the analysis dataset"), 10)
    with replica_reads():  # the heavy read, from the replica when one is configured and current
        version = data_version()  # read first: data changed during the run makes it look stale
        # One stored row per patient (kept current on write), not every timeline rebuilt.
        frame = analysis_frame_stored(cohort)
    # Round-trip through the CSV reader: the snapshot sees exactly what the export gives.
    table_csv = analysis_csv(frame)
    table, refused = read_analysis_csv_lenient(io.StringIO(table_csv))
    excluded = []
    if refused:
        # One bad row (legacy data, a hand correction) never takes the dashboard down: the
        # patient is left out, named, and the rest computed from exactly the rows exported.
        centers = dict(zip(frame["study_id"].astype(str), frame["center"].astype(str), strict=True))
        excluded = [{**row.as_dict(), "center": centers.get(row.study_id, "")} for row in refused]
        left_out = {row.study_id for row in refused}
        logger.warning(
            "Snapshot of %s leaves out %d patient(s) whose rows break the dataset schema",
            cohort.key, len(left_out),
        )
        table_csv = analysis_csv(frame[~frame["study_id"].astype(str).isin(left_out)])
        table = read_analysis_csv(io.StringIO(table_csv))
    progress(gettext_noop("Survival analyses"), 40)
    report = headline_report(table, rfs_origin=rfs_origin, censor_at_hsct=censor_at_hsct)
    progress(gettext_noop("Figures"), 70)

    def figures_with(small_cell_min: int) -> dict:
        return dashboard_figures(
            table,
            report,
            rfs_origin=rfs_origin,
            censor_at_hsct=censor_at_hsct,
            small_cell_min=small_cell_min,
        )

    # A pooled cohort's figures hide small cells for everyone; a center's cohort keeps both its
    # own users' exact figures and the suppressed ones every other viewer gets.
    # Counts in the figures of every other viewer are hidden altogether (HIDE_ALL): the at-risk
    # numbers under a curve fall on the cohort's own event days, which no differencing rule on
    # fixed cells covers; the page's tables give the counts that survive it.
    figures = figures_with(0 if cohort.center else HIDE_ALL)
    figures_suppressed = figures_with(HIDE_ALL) if cohort.center else None
    progress(gettext_noop("Saving"), 95)
    # The differencing rule's atoms for this data version: computed here, in the job, so that
    # the first page view after a data change does not compute them (cached).
    disclosure_atoms(rfs_origin=rfs_origin, censor_at_hsct=censor_at_hsct)
    return DashboardSnapshot.objects.create(
        cohort_key=cohort.key,
        cohort_label=cohort.describe(translate=False),
        data_version=version,
        n_patients=len(table),
        report=report,
        figures=figures,
        figures_suppressed=figures_suppressed,
        options=options,
        table_csv=table_csv,
        excluded=excluded,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def refresh_run_execute(*, run_id: int) -> RefreshRun:
    """Compute the queued run ``run_id`` if this worker wins its claim; a run delivered again
    (done, failed by the sweep, or running on another worker) is returned as it is."""
    won = RefreshRun.claim(
        run_id,
        step=gettext_noop("Starting"),
        progress=1,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    run = RefreshRun.objects.get(pk=run_id)
    if not won:
        return run
    try:
        # A worker killed mid-run stops beating; the sweep fails the run within
        # REFRESH_STALE_SECONDS.
        with run.heartbeat(every=settings.REFRESH_HEARTBEAT_SECONDS):
            snapshot = snapshot_compute(options=run.options, run=run)
    except Exception as error:  # the previous snapshot stays; the page shows the error
        logger.exception("Dashboard refresh %s failed", run.pk)
        run.owned().update(
            status=FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    run.owned().update(
        status=DONE,
        step=gettext_noop("Done"),
        progress=100,
        snapshot=snapshot,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


def refresh_runs_sweep(*, now: datetime | None = None) -> int:
    """Fail every run that nothing is computing any more: running with no heartbeat for
    REFRESH_STALE_SECONDS (its worker died), or queued and never picked up within
    REFRESH_QUEUE_WAIT_SECONDS (no worker). Returns how many were failed."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.REFRESH_STALE_SECONDS)
    unclaimed = now - timedelta(seconds=settings.REFRESH_QUEUE_WAIT_SECONDS)
    failed = 0
    for run in RefreshRun.silent_runs(now=now, stale_after=stale_after):
        seen = timezone.localtime(run.heartbeat_at or run.requested_at)
        failed += run.still_silent(now=now, stale_after=stale_after).update(
            status=FAILED,
            finished_at=now,
            error=(
                f"The worker computing it stopped (last sign of life {seen:%H:%M:%S} at "
                f"{run.step or 'start'}, {run.progress} %); the previous snapshot is kept. "
                "Press Refresh now to start again."
            ),
        )
    failed += RefreshRun.objects.filter(status=QUEUED, requested_at__lt=unclaimed).update(
        status=FAILED,
        finished_at=now,
        error=NOT_PICKED_UP,
    )
    if failed:
        logger.warning("Refresh sweep failed %s run(s) that nothing was computing", failed)
    return failed


def latest_snapshot(cohort: CohortFilter) -> DashboardSnapshot | None:
    return (
        DashboardSnapshot.objects.filter(cohort_key=cohort.key)
        .order_by("-computed_at", "-pk")
        .first()
    )


def refresh_if_changed() -> DashboardSnapshot | None:
    """Beat's check every few minutes: recompute the whole-cohort dashboard if data changed."""
    current = latest_snapshot(CohortFilter())
    if current is not None and current.data_version == data_version():
        return None
    return snapshot_compute(options={})


def snapshot_cohorts(*, now: datetime | None = None) -> list[dict]:
    """The cohorts (as options) the nightly refresh keeps fresh: the whole registry, each
    center with infused patients, and every other filter someone opened in the last
    SNAPSHOT_FILTER_KEEP_DAYS (older one-off filters are computed again only when opened)."""
    now = now or timezone.now()
    wanted: dict[str, dict] = {CohortFilter().key: {}}
    codes = (
        Center.objects.filter(patients__infusions__isnull=False)
        .distinct()
        .order_by("code")
        .values_list("code", flat=True)
    )
    for code in codes:
        options = {"center": code}
        wanted.setdefault(cohort_from_options(options).key, options)
    recent = now - timedelta(days=settings.SNAPSHOT_FILTER_KEEP_DAYS)
    for key, options in (
        DashboardSnapshot.objects.filter(computed_at__gte=recent)
        .order_by("cohort_key", "-computed_at")
        .values_list("cohort_key", "options")
    ):
        wanted.setdefault(key, options)
    return list(wanted.values())


def snapshots_refresh_all(*, now: datetime | None = None) -> list[RefreshRun]:
    """Nightly: a fresh snapshot of every cohort in ``snapshot_cohorts``, each its own task
    (a refresh run), so more workers on more machines finish the night's work sooner; a
    cohort already being computed is not queued twice."""
    return [
        refresh_request(options=options, user=None) for options in snapshot_cohorts(now=now)
    ]


def pending_run(cohort: CohortFilter) -> RefreshRun | None:
    """The cohort's refresh that is queued or running, if any (a dead one is failed first, so
    neither the page nor "Refresh now" ever waits on a run that nothing is computing)."""
    refresh_runs_sweep()
    return RefreshRun.objects.filter(cohort_key=cohort.key, status__in=[QUEUED, RUNNING]).first()


def refresh_request(*, options: dict, user) -> RefreshRun:
    """Ask for a new snapshot of the cohort the options name; a pending one is reused, so
    pressing "Refresh now" twice computes once."""
    cohort = cohort_from_options(options)
    run = pending_run(cohort)
    if run is None:
        run = RefreshRun.objects.create(cohort_key=cohort.key, options=options, requested_by=user)
        refresh_enqueue(run=run)
    return run


# A filtered view whose computation failed is not started again on every page view.
FILTERED_VIEW_RETRY_AFTER = timedelta(minutes=10)


class TooManyNewViews(Exception):
    """The user started DASHBOARD_NEW_FILTERS_PER_HOUR new computations in the past hour."""


def filtered_view_quota_check(*, user, now: datetime | None = None) -> None:
    """Raise TooManyNewViews when the user has started the hour's share of computations."""
    now = now or timezone.now()
    limit = settings.DASHBOARD_NEW_FILTERS_PER_HOUR
    started = RefreshRun.objects.filter(
        requested_by=user, requested_at__gt=now - timedelta(hours=1)
    ).count()
    if started >= limit:
        raise TooManyNewViews(
            f"You have opened {started} new dashboard views in the past hour (the limit is "
            f"{limit}); views already computed still open. Try a new one later."
        )


def filtered_view_request(*, options: dict, user) -> RefreshRun | None:
    """A filtered cohort shown for the first time is computed in the background (the page shows
    the progress and then the numbers) instead of waiting for "Refresh now". Computing a view of
    the same data changes nothing, so any reader may cause it; a view whose last computation
    failed in the past ten minutes waits for "Refresh now" instead of failing in a loop."""
    cohort = cohort_from_options(options)
    failed_lately = RefreshRun.objects.filter(
        cohort_key=cohort.key,
        status=FAILED,
        finished_at__gte=timezone.now() - FILTERED_VIEW_RETRY_AFTER,
    ).exists()
    if failed_lately:
        return None
    filtered_view_quota_check(user=user)
    return refresh_request(options=options, user=user)


def refresh_enqueue(*, run: RefreshRun) -> None:
    """Start a refresh after commit; in-process when no broker is configured."""
    from django.db import transaction

    def enqueue():
        try:
            task_send("analytics.tasks.refresh_dashboard", run.pk, retry=False)
        except Exception as error:  # Redis down: say so on the page rather than spin forever
            RefreshRun.objects.filter(pk=run.pk).update(
                status=FAILED,
                error=f"Could not reach the task queue: {error}",
                finished_at=timezone.now(),
            )

    transaction.on_commit(enqueue)


def snapshot_excluded_for(snapshot: DashboardSnapshot, user) -> tuple[list[dict], int]:
    """The patients a snapshot left out (schema problems) that `user` may see named, and how
    many patients were left out in all. Registry staff and superusers see every center's;
    a center's users see their own center's (a study ID of another center stays unnamed)."""
    rows = snapshot.excluded or []
    n_patients = len({row["study_id"] for row in rows})
    own_center = center_code_restricted_to(user)
    if own_center is None:
        return rows, n_patients
    return [row for row in rows if own_center and row.get("center") == own_center], n_patients

