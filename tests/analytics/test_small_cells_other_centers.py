"""A center's cohort on the dashboard: any signed-in user may pick any center in the filter, so
the center's small cells (counts of 1-4) are shown only to that center's own users. Another
center's hematologist and registry staff see them suppressed, in the page and in the figures'
JSON; the figures' URL that every viewer shares (kept by the browser) never carries them."""

import re

import pytest

from analytics.models import DashboardSnapshot
from analytics.services import snapshot_compute
from tests.analytics.test_disclosure import _risk_texts
from tests.analytics.test_snapshot import small_study

pytestmark = pytest.mark.django_db

SMALL = {"1", "2", "3", "4"}
SMALL_IN_PAGE = re.compile(r"\b(n|events)=[1-4]\b")


@pytest.fixture
def alpha_snapshot(center, other_center, frozen_now, settings):
    settings.SMALL_CELL_MIN = 5
    small_study(center, other_center)  # 9 patients at alpha: several groups of 1-4
    return snapshot_compute(options={"center": "alpha"})


@pytest.mark.parametrize("viewer", ["stranger", "registry"])
def test_other_viewers_see_an_alpha_cohorts_small_cells_suppressed(
    client, request, viewer, alpha_snapshot
):
    client.force_login(request.getfixturevalue(viewer))
    page = client.get("/dashboard/?center=alpha").content.decode()
    assert 'data-testid="results"' in page
    assert "=&lt;5" in page
    assert not SMALL_IN_PAGE.search(page)

    url = f"/dashboard/snapshots/{alpha_snapshot.pk}/figures.json"
    assert f'data-figures-url="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200
    texts = _risk_texts(response.json())
    # Other viewers' figures carry no counts at all (a curve whose n the differencing rule
    # withholds is not sent: figures of 12 patients where alpha has 9 may go altogether).
    assert set(texts) <= {"withheld", "0"}
    assert not SMALL & set(texts)

    own = client.get(f"/dashboard/snapshots/{alpha_snapshot.pk}/figures-own.json")
    assert own.status_code == 403


def test_the_centers_own_hematologist_sees_its_small_cells(clinician_client, alpha_snapshot):
    page = clinician_client.get("/dashboard/?center=alpha").content.decode()
    assert SMALL_IN_PAGE.search(page)
    assert "=&lt;5" not in page

    own_url = f"/dashboard/snapshots/{alpha_snapshot.pk}/figures-own.json"
    assert f'data-figures-url="{own_url}"' in page
    response = clinician_client.get(own_url)
    assert response.status_code == 200
    assert SMALL & set(_risk_texts(response.json()))
    # Never kept by the browser: the next user of the same browser must not get them.
    assert "no-store" in response["Cache-Control"]
    assert "immutable" not in response["Cache-Control"]

    # The shared, immutable URL is the same for everyone: suppressed for Alpha too.
    shared = clinician_client.get(f"/dashboard/snapshots/{alpha_snapshot.pk}/figures.json")
    assert "immutable" in shared["Cache-Control"]
    assert not SMALL & set(_risk_texts(shared.json()))


def test_pooled_snapshot_has_no_own_variant(clinician_client, alpha_snapshot):
    pooled = snapshot_compute(options={})
    assert pooled.figures_suppressed is None
    response = clinician_client.get(f"/dashboard/snapshots/{pooled.pk}/figures-own.json")
    assert response.status_code == 403


def test_a_center_snapshot_without_the_suppressed_variant_shows_others_no_figures(
    client, stranger, alpha_snapshot
):
    """A snapshot computed before the variant existed holds only the exact figures."""
    DashboardSnapshot.objects.filter(pk=alpha_snapshot.pk).update(figures_suppressed=None)
    client.force_login(stranger)
    page = client.get("/dashboard/?center=alpha").content.decode()
    assert 'data-testid="figure-' not in page
    assert client.get(f"/dashboard/snapshots/{alpha_snapshot.pk}/figures.json").json() == {}
