"""Small-cell suppression for pooled (registry-wide) statistics.

A count of 1 to ``minimum - 1`` patients in a table that pools several centers could point to an
individual patient, so it is shown as "< minimum" instead; zero says nothing about anyone and is
shown. A proportion built on a suppressed cell would give the cell away (from the other cell and
the total), so it is suppressed with it, and cells that add up to a shown total are suppressed
together (``suppress_group``). This is primary plus group-wise complementary suppression, not a
full statistical disclosure control. ``minimum`` defaults to ``settings.SMALL_CELL_MIN`` (5).
"""

from __future__ import annotations

from typing import Any

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


def small_cell_label(count: int, minimum: int | None = None) -> int | str:
    """The count as shown in a pooled figure or table: the count, or "<minimum" when small."""
    return f"<{small_cell_minimum(minimum)}" if is_small(count, minimum) else count


#: Report keys whose integer values are counts of patients or events.
COUNT_KEYS = frozenset({"n", "events", "successes", "n_in_cohort", "at_risk", "n_at_risk"})


#: Report keys of a value computed from the counts beside it (a proportion and its interval).
DERIVED_KEYS = frozenset({"proportion", "lower", "upper"})


def suppress_counts(value: Any, minimum: int, *, key: str = "") -> Any:
    """A copy of a JSON-like report with every count under ``COUNT_KEYS`` shown as a label, and
    the proportion and interval beside a suppressed count hidden too (None): "<5/<5 = 33.3 %"
    would give the cells away."""
    if isinstance(value, dict):
        shown = {k: suppress_counts(v, minimum, key=k) for k, v in value.items()}
        if any(k in COUNT_KEYS and isinstance(v, str) for k, v in shown.items()):
            shown.update({k: None for k in DERIVED_KEYS & shown.keys()})
        return shown
    if isinstance(value, list):
        return [suppress_counts(v, minimum, key=key) for v in value]
    if key in COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return small_cell_label(value, minimum)
    return value
