"""Work a worker runs in the background (dashboard refreshes, import jobs): one row per run, its
status, one conditional claim, a heartbeat and the stale sweep's question.

A run is queued, then claimed by exactly one worker with a conditional UPDATE (queued ->
running, as healthchecks' ``sendalerts`` claims a flip): the worker goes on only if that UPDATE
changed the row, so a message the broker delivers twice, or one the sweep sent again, never runs
the same work twice. Each claim counts an attempt; the attempt owns the row while the row is
still running under that attempt's number, and every later write of the worker (progress, the
answer) is conditional on that ownership.

While the work runs, a thread stamps the row's ``heartbeat_at`` every few seconds. A worker that
is killed (SIGKILL, out of memory, a lost machine) stops stamping, so a periodic sweep can tell
a slow run from a dead one by the age of the stamp alone, without asking the worker
(``BackgroundRun.silent_runs``). What the sweep then does (fail the run, queue it again) is the
app's decision.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import ClassVar

from django.db import connection, models
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class BackgroundRun(models.Model):
    """The fields and queries every background run shares. A subclass names the field that
    says when the run was asked for (``ASKED_AT``): a run claimed but never stamped is judged
    by it."""

    ASKED_AT: ClassVar[str] = "created_at"

    status = models.CharField(
        _("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED
    )
    # Touched every few seconds while a worker runs it (``Heartbeat``): a running row whose
    # stamp stopped lost its worker.
    heartbeat_at = models.DateTimeField(_("last sign of life"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)  # claims so far
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def claim(cls, pk, *, now: datetime | None = None, **changes) -> bool:
        """Make the queued run ``pk`` this worker's next attempt (with ``changes`` written in
        the same UPDATE); False when it is not queued: another worker won it, or it is
        finished (a message delivered again). The one claim of every background run."""
        won = cls._default_manager.filter(pk=pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            attempts=F("attempts") + 1,
            heartbeat_at=now or timezone.now(),
            **changes,
        )
        return won == 1

    def owned(self) -> QuerySet:
        """This row while this attempt still owns it (running, under this attempt's number):
        once the sweep took it away, the attempt may neither stamp it alive nor store an
        answer, since every write goes through this queryset."""
        return type(self)._default_manager.filter(
            pk=self.pk, status=RunStatus.RUNNING, attempts=self.attempts
        )

    def heartbeat(self, *, every: float) -> Heartbeat:
        """A heartbeat on this attempt's row, for a ``with`` block around the work."""
        return Heartbeat(self.owned(), every=every, name=f"{self._meta.model_name}-{self.pk}")

    @classmethod
    def silent(cls, *, now: datetime, stale_after: timedelta) -> Q:
        """No sign of life for longer than ``stale_after`` at ``now``: the heartbeat, or the
        time the run was asked for if it never beat."""
        cutoff = now - stale_after
        return Q(heartbeat_at__lt=cutoff) | Q(
            heartbeat_at__isnull=True, **{f"{cls.ASKED_AT}__lt": cutoff}
        )

    @classmethod
    def silent_runs(cls, *, now: datetime, stale_after: timedelta) -> QuerySet:
        """The stale sweep's question: the running rows whose worker stopped beating. Each
        one's change must then go through ``still_silent`` (a stamp since the read wins)."""
        return cls._default_manager.filter(
            cls.silent(now=now, stale_after=stale_after), status=RunStatus.RUNNING
        )

    def still_silent(self, *, now: datetime, stale_after: timedelta) -> QuerySet:
        """This row if the attempt the sweep read is still running and still silent: the
        sweep's UPDATE goes through it, so a heartbeat or an answer since the read wins."""
        return self.owned().filter(type(self).silent(now=now, stale_after=stale_after))


class Heartbeat:
    """Stamp `heartbeat_at` on the rows of `rows` every `every` seconds until the block ends.

    `rows` should name the one row this worker owns *and* the state in which it owns it
    (``BackgroundRun.owned``), so a row the sweep has since taken away is never stamped alive
    again. The thread writes through its own database connection, outside any transaction the
    work holds open, so a stamp is visible at once even while a long import is still
    uncommitted."""

    def __init__(self, rows: QuerySet, *, every: float, name: str = "heartbeat") -> None:
        self.rows = rows
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=name)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(self.every):
                self.rows.update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
