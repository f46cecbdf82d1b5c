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
from django.utils.translation import gettext_noop


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
    """The count as shown in a pooled figure or table: the count, or "<minimum" when small
    (``WITHHELD`` when the minimum is ``HIDE_ALL``: every non-zero count hidden)."""
    if not is_small(count, minimum):
        return count
    return (
        WITHHELD if small_cell_minimum(minimum) >= HIDE_ALL else f"<{small_cell_minimum(minimum)}"
    )


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


# --- Secondary suppression against differencing ------------------------------------------------
#
# A count shown in one view can be subtracted from the same count in another view the same
# reader can open. The rule (SECURITY.md, "Small cells and differencing"):
#
# * Views of another center and pooled views take fixed cohorts only: a product (or all) and a
#   calendar year of first infusion (or all years). A center's own users keep exact views, any
#   date range, of their own center.
# * Every integer of a report (outside its options) is a count of patients, events or
#   intervals, and counts are additive over patients. The fixed cohorts are unions of "atoms"
#   (center x product x year), so each count of every fixed view is the sum of the atoms' counts.
# * For a reader of center C, the part of a count a reader cannot see patient by patient is its
#   sum over atoms of other centers (all atoms for registry staff). A count of a view V is shown
#   only if that part is 0 or >= minimum AND, for every other fixed view W, the difference of
#   the two parts is 0 or >= minimum in absolute value. (Their own center's exact views, any
#   date range, add nothing: the reader knows their own patients one by one.)
# * Withheld counts are shown as ``WITHHELD``; the proportion and interval beside them go too.

#: The rule in one paragraph, for the data dictionary (page and Markdown) and SECURITY.md.
DISCLOSURE_NOTE = gettext_noop(
    "Dashboards of all centers or of another center take fixed cohorts only: a product (or "
    "all) and a calendar year of first infusion (or all years); a center's own users keep "
    "exact views of their own center for any dates. In those views a count of 1-4 patients is "
    'shown as "<5", and a count is "withheld" when the part of it from other centers than '
    "the reader's, or the difference of that part from the same count in any other fixed "
    "view the reader can open, is 1-4: no subtraction of two views recovers fewer than 5 "
    "patients of another center. Figures of those views carry no counts, and a curve whose "
    "number of patients is withheld is not drawn. The CSV export is row level and only for "
    "the reader's own center (registry staff: every center, pseudonymous)."
)

#: How a count withheld by the differencing rule (not itself small) is shown.
WITHHELD = gettext_noop("withheld")  # stored and exported in English, shown translated

#: A minimum so large that every non-zero count is hidden (counts in figures of other views).
HIDE_ALL = 10**9

Atom = tuple[str, str, int]  # (center, product, calendar year of first infusion)
View = tuple[str, str, "int | None"]  # "" = every center / product; None = every year


def count_cells(report: Any, path: str = "") -> dict[str, int]:
    """Every count of a report by its path ("rfs/risk_table/at_risk/3"). List items that carry
    a ``label`` are keyed by it, so a group missing in one cohort does not shift the others."""
    cells: dict[str, int] = {}
    if isinstance(report, dict):
        for key, value in report.items():
            if (path == "" and key == "options") or key == "df":
                continue
            cells.update(count_cells(value, f"{path}/{key}" if path else key))
    elif isinstance(report, list):
        for index, item in enumerate(report):
            name = item.get("label", index) if isinstance(item, dict) else index
            cells.update(count_cells(item, f"{path}/{name}"))
    elif isinstance(report, int) and not isinstance(report, bool):
        cells[path] = report
    return cells


def view_contains(view: View, atom: Atom) -> bool:
    center, product, year = view
    return (
        (not center or atom[0] == center)
        and (not product or atom[1] == product)
        and (year is None or atom[2] == year)
    )


def fixed_views(atoms: dict[Atom, dict[str, int]], centers: list[str]) -> list[View]:
    products = sorted({a[1] for a in atoms})
    years = sorted({a[2] for a in atoms})
    return [
        (c, p, y)
        for c in ["", *sorted(set(centers) | {a[0] for a in atoms})]
        for p in ["", *products]
        for y in [None, *years]
    ]


def differencing_withheld_all(
    atoms: dict[Atom, dict[str, int]],
    *,
    centers: list[str],
    own_center: str | None,
    minimum: int | None = None,
) -> dict[View, set[str]]:
    """For every fixed view a reader of ``own_center`` (None: no center) opens with
    suppression, the paths of its counts they must not see: small themselves (their other
    centers' part), or small by difference from that part of another such view."""
    import numpy as np

    minimum = small_cell_minimum(minimum)
    views = [v for v in fixed_views(atoms, centers) if not own_center or v[0] != own_center]
    paths = sorted({p for cells in atoms.values() for p in cells})
    keys = [a for a in atoms if a[0] != own_center]
    if not views or not paths:
        return {v: set() for v in views}
    counts = np.array([[atoms[a].get(p, 0) for p in paths] for a in keys], dtype=np.int64)
    member = np.array([[view_contains(v, a) for a in keys] for v in views], dtype=np.int64)
    if not keys:
        counts, member = np.zeros((1, len(paths)), np.int64), np.zeros((len(views), 1), np.int64)
    parts = member @ counts  # views x paths: the part of each count beyond the own center
    small = (parts > 0) & (parts < minimum)
    out = {}
    for index, view in enumerate(views):
        gap = np.abs(parts - parts[index])
        by_difference = ((gap > 0) & (gap < minimum)).any(axis=0)
        hidden = small[index] | by_difference
        out[view] = {paths[j] for j in np.flatnonzero(hidden)}
    return out


def differencing_withheld(
    view: View,
    atoms: dict[Atom, dict[str, int]],
    *,
    centers: list[str],
    own_center: str | None,
    minimum: int | None = None,
) -> set[str]:
    """The withheld paths of one view (``differencing_withheld_all``)."""
    every = differencing_withheld_all(
        atoms, centers=centers, own_center=own_center, minimum=minimum
    )
    return every.get(view, set())


def report_shown(report: Any, minimum: int, withheld: set[str] | None = None) -> Any:
    """The report as a reader sees it: small counts as "<minimum" (``suppress_counts``), and
    every count whose path is in ``withheld`` as ``WITHHELD``, with the proportion and interval
    beside any hidden count hidden too."""
    if not withheld:
        return suppress_counts(report, minimum)

    def walk(value: Any, path: str, key: str) -> Any:
        if isinstance(value, dict):
            shown = {
                k: walk(v, f"{path}/{k}" if path else k, k)
                if not (path == "" and k == "options")
                else v
                for k, v in value.items()
            }
            if any(
                isinstance(v, str) and (v == WITHHELD or v.startswith("<"))
                for k, v in shown.items()
                if isinstance(value.get(k), int) and not isinstance(value.get(k), bool)
            ):
                shown.update({k: None for k in DERIVED_KEYS & shown.keys()})
            return shown
        if isinstance(value, list):
            return [
                walk(
                    v,
                    f"{path}/{v.get('label', i) if isinstance(v, dict) else i}",
                    key,
                )
                for i, v in enumerate(value)
            ]
        if isinstance(value, int) and not isinstance(value, bool):
            if path in withheld:
                return small_cell_label(value, minimum) if is_small(value, minimum) else WITHHELD
            return small_cell_label(value, minimum) if key in COUNT_KEYS else value
        return value

    return walk(report, "", "")


def withheld_shown(node: Any) -> Any:
    """A shown report (or table) with its "withheld" marks in the active language."""
    from django.utils.translation import gettext

    if node == WITHHELD:
        return gettext(WITHHELD)
    if isinstance(node, list):
        return [withheld_shown(item) for item in node]
    if isinstance(node, dict):
        return {key: withheld_shown(value) for key, value in node.items()}
    return node
