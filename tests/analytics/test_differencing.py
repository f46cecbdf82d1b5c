"""Small cells cannot be recovered by subtracting one dashboard view from another.

Issue 21 finding 1: a Beta hematologist subtracted their own center's exact view from the
all-centers view of the same dates and read Alpha's suppressed cells; registry staff moved
``infused_to`` by a day and read one patient's outcome. The rule (SECURITY.md, "Small cells and
differencing"): other centers' and pooled views are fixed cohorts only, and a count is withheld
when the part of it beyond the reader's own center, or its difference from that part of any
other fixed view, is 1-4.

On the demo cohort (55 patients, 2 centers, 3 products, 4 years) the test replays both attacks
and then searches every pair of views each reader can open, cell by cell: before the rule (one
table at a time) it recovers small counts of another center; with it, none.
"""

from __future__ import annotations

import io
import itertools
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction

from analytics import services
from analytics.dataset import CohortFilter, analysis_csv, analysis_frame
from analytics.dataset_schema import read_analysis_csv
from analytics.disclosure import (
    count_cells,
    differencing_withheld_all,
    fixed_views,
    report_shown,
    suppress_counts,
)
from analytics.report import headline_report
from tests.analytics.test_disclosure import _risk_texts

MIN = 5
READERS = {"registry": None, "dr.alpha": "alpha", "dr.beta": "beta"}
REFUSED = "take a whole calendar year of infusion"


def test_the_rule_on_a_toy_table():
    # Alpha has 7 patients in 2021 and 1 in 2022; beta 6 in 2021. A beta reader opening
    # "all years" (14) and "2021" (13) would learn alpha's 2022 patient by subtraction.
    atoms = {("alpha", "p", 2021): {"n": 7}, ("alpha", "p", 2022): {"n": 1}}
    atoms[("beta", "p", 2021)] = {"n": 6}
    beta = differencing_withheld_all(atoms, centers=["alpha", "beta"], own_center="beta")
    assert "n" in beta[("", "", None)]  # 8 of alpha's vs 7 in 2021: one by difference
    assert "n" in beta[("", "", 2021)]
    assert "n" in beta[("", "", 2022)]  # alpha's 1 itself
    assert ("beta", "", None) not in beta  # their own center: exact, nothing withheld
    eleven = {("alpha", "p", 2021): {"n": 11}, ("alpha", "p", 2022): {"n": 20}}
    clear = differencing_withheld_all(eleven, centers=["alpha"], own_center=None)
    assert clear[("", "", None)] == set() and clear[("", "", 2021)] == set()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo cohort, every fixed view's report (from the pooled table, checked against the
    service for a few), for the module; rolled back afterwards."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command(
            "load_demo_cohort",
            "--quiet-logins",
            "--today",
            "2026-07-01",
            "--no-live",
            stdout=io.StringIO(),
        )
        cache.clear()
        table = read_analysis_csv(io.StringIO(analysis_csv(analysis_frame(CohortFilter()))))
        atoms = services.disclosure_atoms()
        reports = {}
        for view in fixed_views(atoms, ["alpha", "beta"]):
            center, product, year = view
            rows = table
            if center:
                rows = rows[rows["center"] == center]
            if product:
                rows = rows[rows["product"] == product]
            if year is not None:
                rows = rows[rows["first_infusion_date"].map(lambda d: d.year) == year]
            reports[view] = headline_report(rows.reset_index(drop=True))
        yield {"atoms": atoms, "reports": reports}
        transaction.set_rollback(True)


def _options(view) -> dict:
    center, product, year = view
    options = {"center": center, "product": product}
    if year is not None:
        options |= {"infused_from": f"{year}-01-01", "infused_to": f"{year}-12-31"}
    return {k: v for k, v in options.items() if v}


def _cohort(view) -> CohortFilter:
    return services.cohort_from_options(_options(view))


def test_every_fixed_views_counts_add_up_from_its_atoms(demo, db):
    """The rule's premise: each count of a fixed view is the sum of its atoms' counts."""
    atoms = demo["atoms"]
    assert len(atoms) >= 12 and len(demo["reports"]) == 60
    for view, report in demo["reports"].items():
        summed: dict[str, int] = {}
        for atom, cells in atoms.items():
            if all(v in ("", None) or v == a for v, a in zip(view, atom, strict=True)):
                for path, value in cells.items():
                    summed[path] = summed.get(path, 0) + value
        actual = count_cells(report)
        assert {p: v for p, v in actual.items() if v} == {p: v for p, v in summed.items() if v}
    # The pooled table filtered here is what the service computes for the same cohort.
    for view in [("", "", 2022), ("beta", "", None), ("alpha", "tisagenlecleucel", 2023)]:
        frame = analysis_frame(_cohort(view))
        served = headline_report(read_analysis_csv(io.StringIO(analysis_csv(frame))))
        assert count_cells(served) == count_cells(demo["reports"][view])


def _differencing_search(shown: dict, exact: dict, own: str | None) -> tuple[int, list]:
    """Every count a reader can compute: each view's shown count minus their own center's
    exact count of the same cohort (their other centers' part), alone and minus the same part
    of every other view. Returns (attempts, recovered counts of 1-4)."""
    parts = {}
    for view, cells in shown.items():
        if own and view[0] == own:
            continue
        mine = exact[(own, view[1], view[2])] if own and not view[0] else {}
        parts[view] = {p: v - mine.get(p, 0) for p, v in count_cells(cells).items()}
    attempts, found = 0, []
    for view, cells in parts.items():
        for path, value in cells.items():
            attempts += 1
            if 0 < value < MIN:
                found.append((view, path, value))
    for (v, a), (w, b) in itertools.combinations(parts.items(), 2):
        for path in a.keys() & b.keys():
            attempts += 1
            if 0 < abs(a[path] - b[path]) < MIN:
                found.append((v, w, path, a[path] - b[path]))
    return attempts, found


def test_no_pair_of_views_gives_away_a_small_count_of_another_center(demo, db, settings):
    settings.SMALL_CELL_MIN = MIN
    reports = demo["reports"]
    exact = {view: count_cells(report) for view, report in reports.items()}
    totals = {"before": [0, 0], "after": [0, 0]}
    for username, own in READERS.items():
        user = get_user_model().objects.get(username=username)
        before = {v: suppress_counts(r, MIN if v[0] != own else 0) for v, r in reports.items()}
        after = {}
        for view, report in reports.items():
            withheld = services.withheld_cells_for(_cohort(view), user)
            minimum = services.small_cell_min_for(_cohort(view), user)
            assert (withheld is None) == (own is not None and view[0] == own)
            after[view] = report_shown(report, minimum, withheld)
        for name, shown in (("before", before), ("after", after)):
            attempts, found = _differencing_search(shown, exact, own)
            totals[name][0] += attempts
            totals[name][1] += len(found)
            if name == "after":
                assert found == [], (username, found[:5])
                default = count_cells(shown[("", "", None)])  # the pooled view stays useful
                assert len(default) > len(exact[("", "", None)]) / 2, username
    print(f"\ndifferencing search: {totals}")
    assert totals["before"][1] > 0  # the search does find what one table at a time leaves
    assert totals["after"][0] > 10_000  # and it made its attempts on the shown views


def _page_report(client, **params) -> dict:
    response = client.get("/dashboard/", params)
    assert response.status_code == 200
    assert 'data-testid="results"' in response.content.decode()
    return response.context["r"]


def test_the_beta_hematologists_attack_is_refused_and_its_nearest_view_holds(
    demo, db, client, settings
):
    settings.SMALL_CELL_MIN = MIN
    client.force_login(get_user_model().objects.get(username="dr.beta"))
    window = {"infused_from": "2021-03-01", "infused_to": "2021-07-31"}
    page = client.get("/dashboard/", window).content.decode()
    assert REFUSED in page
    assert client.get("/dashboard/", {**window, "center": "alpha"}).context["form"].errors
    # Their own center, exact, any dates: allowed.
    assert not client.get("/dashboard/", {**window, "center": "beta"}).context["form"].errors

    # The nearest views they may open: all centers in 2021, and Beta's own 2021, exact.
    year = {"infusion_year": "2021"}
    for view in [("", "", 2021), ("beta", "", 2021)]:
        services.snapshot_compute(options=_options(view))
    pooled = _page_report(client, **year)
    own = _page_report(client, **year, center="beta")
    for path in ["cr_rate/successes", "cr_rate/n", "rfs/n", "rfs/events", "os/events"]:
        a, b = (count_cells(r).get(path) for r in (pooled, own))
        if a is not None:  # shown: Alpha's part is 0 or at least 5
            assert not 0 < a - b < MIN, path
    snapshot = services.latest_snapshot(_cohort(("", "", 2021)))
    texts = _risk_texts(client.get(f"/dashboard/snapshots/{snapshot.pk}/figures.json").json())
    assert not [t for t in texts if re.fullmatch(r"[1-9]\d*", t)]  # no count in the figures


def test_registry_cannot_move_a_window_by_one_day(demo, db, client, settings):
    settings.SMALL_CELL_MIN = MIN
    client.force_login(get_user_model().objects.get(username="registry"))
    for end in ("2022-06-29", "2022-06-30"):
        response = client.get("/dashboard/", {"infused_from": "2021-03-01", "infused_to": end})
        assert REFUSED in response.content.decode()
        assert response.context["form"].errors
    # A whole calendar year given as dates is the same fixed view as the year.
    whole = client.get("/dashboard/", {"infused_from": "2022-01-01", "infused_to": "2022-12-31"})
    assert not whole.context["form"].errors
