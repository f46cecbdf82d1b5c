"""Small-cell suppression for pooled (registry-wide) statistics.

A count of 1 to ``minimum - 1`` patients in a table that pools several centers could point to an
individual patient, so it is shown as "< minimum" instead; zero says nothing about anyone and is
shown. A proportion built on a suppressed cell would give the cell away (from the other cell and
the total), so it is suppressed with it, and cells that add up to a shown total are suppressed
together (``suppress_group``). This is primary plus group-wise complementary suppression, not a
full statistical disclosure control. ``minimum`` defaults to ``settings.SMALL_CELL_MIN`` (5).
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


def suppress_group(counts: dict[str, int], minimum: int | None = None) -> dict[str, int | None]:
    """Cells that add up to a shown total: if any is small, every non-zero one is suppressed.

    Suppressing the small cell alone would let it be recovered as the total minus the others
    (complementary disclosure). Zeros stay: a group with one non-zero cell equals its total,
    which is itself shown only when it is not small.
    """
    if any(is_small(v, minimum) for v in counts.values()):
        return {k: (0 if v == 0 else None) for k, v in counts.items()}
    return dict(counts)
