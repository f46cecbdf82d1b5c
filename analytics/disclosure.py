"""Small-cell suppression for registry-wide (pooled) tables: a count from 1 to ``minimum - 1``
is shown as "<minimum", so a handful of patients from one center cannot be singled out in
figures that every registry member sees. Zero is shown (it identifies nobody), and so is every
count at or above the minimum. Pure functions; the statistics themselves stay exact.

(Kept deliberately small: issue 12 may add a same-named helper elsewhere; merge them into one.)
"""

from __future__ import annotations

from typing import Any

#: Report keys whose integer values are counts of patients or events.
COUNT_KEYS = frozenset({"n", "events", "successes", "n_in_cohort", "at_risk", "n_at_risk"})


def suppress_small(count: int, minimum: int) -> int | str:
    """The count, or "<minimum" when it is small enough to point at a few patients."""
    if minimum <= 1 or count == 0 or count >= minimum:
        return count
    return f"<{minimum}"


def suppress_counts(value: Any, minimum: int, *, key: str = "") -> Any:
    """A copy of a JSON-like report with every count under ``COUNT_KEYS`` suppressed."""
    if isinstance(value, dict):
        return {k: suppress_counts(v, minimum, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [suppress_counts(v, minimum, key=key) for v in value]
    if key in COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return suppress_small(value, minimum)
    return value
