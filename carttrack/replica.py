"""Reads that may come from a PostgreSQL streaming replica (``DATABASE_REPLICA_URL``).

Dashboards, exports, rule performance and the snapshot's dataset read a great deal and change
nothing, so with a hot standby configured they read from it; everything else stays on the
primary. The choice is explicit, never by model: code opts in with ``replica_reads()`` (or the
``replica_view`` decorator for a GET view), and while it is active the router sends *reads* to
the replica and every write to the primary. A read that decides a write (is there a snapshot?
then do not queue another) asks the primary itself (``.using("default")``).

The replica is used only while it answers and is not further behind than
``REPLICA_MAX_LAG_SECONDS``; otherwise reads fall back to the primary and a warning is logged.
Its state is checked at most every ``REPLICA_CHECK_SECONDS``. A page that read from the replica
says "as of" the replica's last replayed transaction.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA = "replica"
PRIMARY = "default"

_reading = contextvars.ContextVar("carttrack_replica_reads", default=False)
_lock = threading.Lock()
_last: tuple[float, ReplicaState] | None = None


@dataclass(frozen=True)
class ReplicaState:
    usable: bool
    lag_seconds: float | None = None
    as_of: datetime | None = None  # the replica's last replayed transaction
    problem: str = ""


def replica_configured() -> bool:
    return REPLICA in connections.settings


def _measure() -> ReplicaState:
    """Ask the replica how far behind it is. Lag is 0 when it has replayed everything it
    received, else the time since the last transaction it replayed."""
    connection = connections[REPLICA]
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),"
                " pg_last_xact_replay_timestamp(),"
                " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
            )
            in_recovery, caught_up, replayed_at, behind = cursor.fetchone()
    except DatabaseError as error:
        connection.close()  # a dead connection is not reused
        return ReplicaState(usable=False, problem=f"not reachable ({error.__class__.__name__})")
    if not in_recovery:  # promoted, or pointed at a primary: current by definition
        return ReplicaState(usable=True, lag_seconds=0.0)
    lag = 0.0 if caught_up or behind is None else max(0.0, float(behind))
    limit = settings.REPLICA_MAX_LAG_SECONDS
    if lag > limit:
        return ReplicaState(
            usable=False, lag_seconds=lag, as_of=replayed_at,
            problem=f"{lag:.1f} s behind (limit {limit} s)",
        )
    return ReplicaState(usable=True, lag_seconds=lag, as_of=replayed_at)


def replica_state(*, fresh: bool = False) -> ReplicaState:
    """The replica's state, measured at most every REPLICA_CHECK_SECONDS (``fresh`` measures)."""
    global _last
    if not replica_configured():
        return ReplicaState(usable=False, problem="not configured")
    now = time.monotonic()
    with _lock:
        if not fresh and _last is not None and now - _last[0] < settings.REPLICA_CHECK_SECONDS:
            return _last[1]
    state = _measure()
    with _lock:
        was_usable = _last[1].usable if _last is not None else True
        _last = (now, state)
    if not state.usable and was_usable:
        logger.warning("Replica not used, reads go to the primary: %s", state.problem)
    elif state.usable and not was_usable:
        logger.info("Replica back in use (%.1f s behind)", state.lag_seconds or 0.0)
    return state


def replica_forget() -> None:
    """Forget the measured state (tests, or after reconfiguring the replica)."""
    global _last
    with _lock:
        _last = None


@contextmanager
def replica_reads():
    """Send the reads inside to the replica when it is usable; yields its ReplicaState (with
    ``usable`` False when the reads go to the primary)."""
    state = replica_state() if replica_configured() else ReplicaState(usable=False)
    token = _reading.set(state.usable)
    try:
        yield state
    finally:
        _reading.reset(token)


@contextmanager
def primary_reads():
    """Reads inside go to the primary, even within ``replica_reads()``: for a read that decides
    a write."""
    token = _reading.set(False)
    try:
        yield
    finally:
        _reading.reset(token)


def reading_from_replica() -> bool:
    return _reading.get()


def replica_view(view):
    """Run a read-only GET view with its reads on the replica. If the replica fails during the
    view, the view runs again on the primary (a GET changes nothing, so that is safe), logged.
    The request carries ``replica_as_of`` (None when the primary answered)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        request.replica_as_of = None
        if request.method not in ("GET", "HEAD") or not replica_configured():
            return view(request, *args, **kwargs)
        with replica_reads() as state:
            if state.usable:
                try:
                    request.replica_as_of = state.as_of or datetime.now().astimezone()
                    return view(request, *args, **kwargs)
                except DatabaseError as error:
                    if not _replica_failed():
                        raise
                    logger.warning(
                        "Replica failed during %s (%s): answered from the primary",
                        request.path, error.__class__.__name__,
                    )
        request.replica_as_of = None
        return view(request, *args, **kwargs)

    return wrapper


def _replica_failed() -> bool:
    """After a database error while reading from the replica: is the replica the cause?"""
    state = replica_state(fresh=True)
    return not state.usable


class ReplicaRouter:
    """Reads go to the replica only inside ``replica_reads()``; writes, and migrations, never."""

    def db_for_read(self, model, **hints):
        return REPLICA if _reading.get() else None

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica is a copy of the primary: the same rows

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA
