"""A heartbeat for work a worker runs in the background (dashboard refreshes, import jobs).

While the work runs, a thread stamps the row's `heartbeat_at` every few seconds. A worker that
is killed (SIGKILL, out of memory, a lost machine) stops stamping, so a periodic sweep can tell
a slow job from a dead one by the age of the stamp alone, without asking the worker.
"""

from __future__ import annotations

import threading

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone


class Heartbeat:
    """Stamp `heartbeat_at` on the rows of `rows` every `every` seconds until the block ends.

    `rows` should name the one row this worker owns *and* the state in which it owns it (e.g.
    `status=RUNNING`), so a row the sweep has since taken away is never stamped alive again.
    The thread writes through its own database connection, outside any transaction the work
    holds open, so a stamp is visible at once even while a long import is still uncommitted."""

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
