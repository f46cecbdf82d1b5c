"""Small-cell suppression for pooled (registry-wide) statistics.

A count of 1 to ``minimum - 1`` patients in a table that pools several centers could point to an
individual patient, so it is shown as "< minimum" instead; zero says nothing about anyone and is
shown. A proportion built on a suppressed cell would give the cell away (from the other cell and
the total), so it is suppressed with it. ``minimum`` defaults to ``settings.SMALL_CELL_MIN`` (5).
"""

from __future__ import annotations

from django.conf import settings


def small_cell_minimum(minimum: int | None = None) -> int:
    return settings.SMALL_CELL_MIN if minimum is None else minimum


def is_small(count: int | None, minimum: int | None = None) -> bool:
    """Whether a count must be suppressed: 0 < count < minimum."""
    return count is not None and 0 < count < small_cell_minimum(minimum)


def suppress_small(count: int | None, minimum: int | None = None) -> int | None:
    """The count, or None (shown as "< minimum") when it is a small cell."""
    return None if is_small(count, minimum) else count
