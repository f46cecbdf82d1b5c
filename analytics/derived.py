"""Derived facts kept current on write: each patient's analysis dataset row, stored.

A snapshot used to rebuild every patient's timeline from the raw records (most of its time, and
memory growing with the number of lab values). The row `analytics.dataset.patient_row` builds
depends only on the patient's own records and on a few settings of their center, so it is stored
per patient (`PatientDerived`) and kept current:

- in the transaction of every clinical write: `patients.signals.records_changed` (the form
  services, the one import path, a center's rule parameters published) reaches
  `derived_rows_store`, which rebuilds the named patients' rows in bulk while their row locks are
  held, so the stored row is committed with the records or not at all;
- what the row depends on besides the records (the center's code and time zone, its alert
  parameters in force, the row's logic: ``DERIVED_LOGIC``) is fingerprinted in
  ``inputs_version``; a row whose fingerprint is not the current one (a setting changed without
  a write, e.g. a center renamed or parameters published straight into the table) is stale and
  is rebuilt when read, as is a missing one (records written straight into the tables);
- nothing in the row depends on the date it is built (follow-up ends at the last record or
  death, never at "today"), so a stored row stays right until the records or the inputs change;
- `derived_facts_verify` (the management command, and nightly) rebuilds every row from the raw
  records and reports every difference, the proof that the write paths keep it current.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analytics.dataset import (
    CohortFilter,
    cohort_patients,
    records_read,
    rows_build,
)
from analytics.dataset_schema import COLUMN_NAMES
from analytics.models import PatientDerived
from carttrack.replica import primary_reads, reading_from_replica
from monitoring.params import RuleParams
from monitoring.selectors import params_in_force_for_centers
from patients.models import Center, Patient

#: Bump when `patient_row` changes what it computes: every stored row becomes stale and is
#: rebuilt when read (and by the nightly check).
DERIVED_LOGIC = "1"
BATCH = 2000  # patients per round of queries: bounded memory for large registries


def _fingerprint(code: str, zone: str, params: RuleParams) -> str:
    text = f"{DERIVED_LOGIC}|{code}|{zone}|{params!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def inputs_versions(center_ids: Iterable[int]) -> dict[int, str]:
    """Each center's fingerprint of what a row depends on besides the patient's records: the
    center's code and time zone, its alert parameters in force (the center_* columns) and the
    row's logic version. One query for the centers, one for the parameters."""
    wanted = set(center_ids)
    if not wanted:
        return {}
    params = params_in_force_for_centers(wanted)
    return {
        pk: _fingerprint(code, zone, params[pk])
        for pk, code, zone in Center.objects.filter(pk__in=wanted).values_list(
            "pk", "code", "time_zone"
        )
    }


@dataclass(frozen=True)
class Rebuilt:
    patient_id: int
    study_id: str
    center_id: int
    row: dict | None
    inputs_version: str


def rows_rebuild(patient_ids: list[int]) -> list[Rebuilt]:
    """The patients' rows rebuilt from their raw records (by study ID), in one `records_read`,
    each with the fingerprint of the inputs it was built with (read with them)."""
    records = records_read(patient_ids)
    in_force = params_in_force_for_centers({r.center_id for r in records}) if records else {}
    return [
        Rebuilt(
            r.patient_id,
            r.study_id,
            r.center_id,
            row,
            _fingerprint(r.center, r.center_time_zone, in_force[r.center_id]),
        )
        for r, row in rows_build(records, in_force)
    ]


def _stored(rebuilt: list[Rebuilt], now) -> list[PatientDerived]:
    return [
        PatientDerived(
            patient_id=r.patient_id, row=r.row, inputs_version=r.inputs_version, updated_at=now
        )
        for r in rebuilt
    ]


def derived_rows_store(*, patient_ids: Iterable[int]) -> int:
    """Rebuild and store the patients' rows (inserted or replaced), in batches; returns how many.

    Runs in the caller's transaction, the one that changed the records (the patients' rows are
    locked by the writer), so the rows are committed with the records. A patient deleted
    meanwhile has no row to keep (its row goes with it)."""
    ids = sorted(set(patient_ids))
    stored = 0
    with primary_reads():  # reads that decide a write (a writer inside replica_reads())
        for start in range(0, len(ids), BATCH):
            rebuilt = rows_rebuild(ids[start : start + BATCH])
            PatientDerived.objects.bulk_create(
                _stored(rebuilt, timezone.now()),
                update_conflicts=True,
                unique_fields=["patient"],
                update_fields=["row", "inputs_version", "updated_at"],
            )
            stored += len(rebuilt)
    return stored


def center_rows_store(*, center_id: int | None) -> int:
    """Rebuild the stored rows of a center's patients (None: every center's) whose inputs
    changed: the center's code or time zone, or its alert parameters in force (the center_*
    columns follow them). The patients are locked first, in pk order as every bulk writer does
    (`rule_parameters_publish` then re-evaluates their alerts under the same locks), so a
    clinical write of one of them waits and rebuilds its row with the new inputs. Returns how
    many rows were rebuilt."""
    centers = Center.objects.all() if center_id is None else Center.objects.filter(pk=center_id)
    with primary_reads():
        versions = inputs_versions(centers.values_list("pk", flat=True))
    stale = Q()
    for pk, version in versions.items():
        stale |= Q(patient__center_id=pk) & ~Q(inputs_version=version)
    if not stale:
        return 0
    with transaction.atomic(), primary_reads():
        ids = list(PatientDerived.objects.filter(stale).values_list("patient_id", flat=True))
        ids = list(
            Patient.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        return derived_rows_store(patient_ids=ids)


def rows_stored(
    patient_ids: list[int], *, versions: dict[int, str], store: bool = True
) -> list[dict | None]:
    """The patients' rows in the order of ``patient_ids``, as stored; a missing or stale one
    (its fingerprint not in ``versions``, the current ones) is rebuilt from the raw records and,
    with ``store``, stored, unless the reads go to a replica (its data may be older than the
    primary's).

    Storing never overwrites a row a writer changed meanwhile and never waits for one: every
    writer locks the patient before it stores the row, so only the patients whose lock is free
    are stored (``SKIP LOCKED``: a patient being written is left to its writer), a missing row
    is inserted only if still missing and a stale one replaced only if still the one read (same
    ``updated_at``): a row a writer committed after these reads is built from the newer records,
    so it wins."""
    found = {
        pk: (center_id, row, version, updated)
        for pk, center_id, row, version, updated in PatientDerived.objects.filter(
            patient_id__in=patient_ids
        ).values_list("patient_id", "patient__center_id", "row", "inputs_version", "updated_at")
    }
    rows: dict[int, dict | None] = {}
    outdated: dict[int, object] = {}  # pk: the updated_at of the stale row read
    for pk in patient_ids:
        stored = found.get(pk)
        if stored is not None and versions.get(stored[0]) == stored[2]:
            rows[pk] = stored[1]
        elif stored is not None:
            outdated[pk] = stored[3]
    missing = [pk for pk in patient_ids if pk not in rows]
    if missing:
        rebuilt = rows_rebuild(missing)
        rows.update((r.patient_id, r.row) for r in rebuilt)
        if store and not reading_from_replica():
            _fallback_store(rebuilt, outdated)
    return [rows[pk] for pk in patient_ids if pk in rows]


def _fallback_store(rebuilt: list[Rebuilt], outdated: dict) -> None:
    with transaction.atomic():
        free = set(
            Patient.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=[r.patient_id for r in rebuilt])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        still = Q()
        for pk, updated in outdated.items():
            if pk in free:
                still |= Q(patient_id=pk, updated_at=updated)
        if still:
            PatientDerived.objects.filter(still).delete()
        PatientDerived.objects.bulk_create(
            _stored([r for r in rebuilt if r.patient_id in free], timezone.now()),
            ignore_conflicts=True,
        )


def cohort_rows_stored(cohort: CohortFilter, *, store: bool = True) -> Iterator[dict | None]:
    """Every patient of the cohort's stored row, by study ID (as `analysis_frame` orders them),
    read in batches (``store``: see `rows_stored`)."""
    ids = list(cohort_patients(cohort).values_list("pk", flat=True))
    versions = inputs_versions(Center.objects.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        yield from rows_stored(ids[start : start + BATCH], versions=versions, store=store)


def analysis_frame_stored(
    cohort: CohortFilter | None = None, *, store: bool = True
) -> pd.DataFrame:
    """`analytics.dataset.analysis_frame` from the stored rows: the same table, without
    rebuilding every patient's timeline. ``store`` False: a row rebuilt because it was missing
    or stale is not stored (a page's read, which writes nothing)."""
    rows = [
        row for row in cohort_rows_stored(cohort or CohortFilter(), store=store) if row is not None
    ]
    return pd.DataFrame(rows, columns=list(COLUMN_NAMES))


@dataclass(frozen=True)
class Difference:
    study_id: str
    column: str  # a dataset column; "(row)" when the stored row is missing or the patient has
    # no row on one side; "(inputs)" when only the fingerprint differs
    stored: object
    rebuilt: object


def _differences(rebuilt: Rebuilt, stored) -> list[Difference]:
    if stored is None:
        return [Difference(rebuilt.study_id, "(row)", "missing", rebuilt.row is not None)]
    row, version = stored
    if (row is None) != (rebuilt.row is None):
        return [Difference(rebuilt.study_id, "(row)", row is not None, rebuilt.row is not None)]
    found = []
    if row is not None:
        for column in COLUMN_NAMES:
            if row.get(column) != rebuilt.row.get(column):
                found.append(
                    Difference(rebuilt.study_id, column, row.get(column), rebuilt.row.get(column))
                )
    if not found and version != rebuilt.inputs_version:
        found.append(Difference(rebuilt.study_id, "(inputs)", version, rebuilt.inputs_version))
    return found


def _compared(chunk: list[int]) -> tuple[list[Difference], list[int]]:
    """The differences between the patients' stored rows and their rebuild, and who differs."""
    stored = {
        pk: (row, version)
        for pk, row, version in PatientDerived.objects.filter(patient_id__in=chunk).values_list(
            "patient_id", "row", "inputs_version"
        )
    }
    differences, wrong = [], []
    for rebuilt in rows_rebuild(chunk):
        found = _differences(rebuilt, stored.get(rebuilt.patient_id))
        if found:
            differences.extend(found)
            wrong.append(rebuilt.patient_id)
    return differences, wrong


def derived_facts_verify(*, fix: bool = False, batch: int = BATCH) -> list[Difference]:
    """Rebuild every patient's row from the raw records, in batches, and compare with the stored
    one; every difference (study ID, column, stored, rebuilt). ``fix``: store the rebuilt rows
    that differ.

    A patient found different is compared again under their lock (a writer may have changed
    the records between the two reads of the first comparison), so only a real difference is
    reported; with ``fix`` their row is then rebuilt under that lock, as a writer stores it."""
    ids = list(Patient.objects.order_by("study_id").values_list("pk", flat=True))
    differences: list[Difference] = []
    with primary_reads():
        for start in range(0, len(ids), batch):
            _found, wrong = _compared(ids[start : start + batch])
            if not wrong:
                continue
            with transaction.atomic():
                locked = list(
                    Patient.objects.select_for_update()
                    .filter(pk__in=wrong)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                found, wrong = _compared(locked)
                differences.extend(found)
                if fix and wrong:
                    derived_rows_store(patient_ids=wrong)
    return differences
