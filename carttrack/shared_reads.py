"""Reads shared by everything that runs inside one block: each is read from the database once.

`with reads_shared(): ...` opens a scope (per thread: a context variable); inside it
`read_shared(key, compute)` returns what `compute()` gave for the same key earlier in the scope.
A scope holds one moment's reads, so it is opened only around work that does not change what it
shares:

- one group of HL7 messages (the feed, code map and unit aliases of a center, in its one
  transaction; `imports.hl7v2`);
- what follows a write: the receivers of one `patients.signals.records_changed` announcement
  and, for an import, the alert evaluation before it (`imports.services.records_import`): they
  write alerts and derived rows, never the clinical records they read, so the patients'
  timelines and their centers' settings are read once for all of them.

Nothing outlives its scope, so a configuration changed between two scopes is read again by the
second. A nested scope is independent unless opened with `join=True` (the announcement joins
the scope its writer opened after writing); outside any scope every call computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_scope: ContextVar[dict | None] = ContextVar("carttrack_reads_shared", default=None)


@contextmanager
def reads_shared(*, join: bool = False) -> Iterator[None]:
    if join and _scope.get() is not None:
        yield  # the open scope
        return
    token = _scope.set({})
    try:
        yield
    finally:
        _scope.reset(token)


def read_shared(key: tuple, compute: Callable[[], T]) -> T:
    """`compute()`, or what it gave for the same `key` earlier in the `reads_shared` scope."""
    memo: dict[tuple, Any] | None = _scope.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]
