"""axe-core on every other page a clinician or registry user reaches, at desktop and phone
widths and at 200 % zoom (a 640 px window), with no sideways scrolling."""

import pytest

from tests.browser.axe import assert_accessible
from tests.browser.steps import check_page, sign_in

pytestmark = pytest.mark.browser


PAGES = [
    "/",
    "/patients/",
    "/patients/CT-0100/",
    "/patients/CT-0100/history/",
    "/patients/CT-0100/infusion/add/",
    "/alerts/",
    "/alerts/?status=all",
    "/alerts/preferences/",
    "/dashboard/",
    "/dashboard/data-dictionary/",
    "/dashboard/tables/",
    "/imports/held/",
]


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 900), (390, 844), (640, 450)], ids=["desktop", "phone", "zoom200"]
)
def test_every_page_passes_axe_and_fits_the_window(page, clinician, registry_data, width, height):
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, clinician.username)
    for url in [*PAGES, registry_data.get_absolute_url()]:
        page.goto(url)
        page.wait_for_load_state("load")
        check_page(page, url)
    # Apply stays reachable on the dashboard at every width.
    page.goto("/dashboard/")
    apply = page.get_by_role("button", name="Apply")
    apply.scroll_into_view_if_needed()
    box = apply.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_the_login_page_passes_axe(page):
    page.goto("/login/")
    assert_accessible(page, "the login page")


def test_printing_the_patient_page_and_the_dashboard_leaves_out_the_controls(
    page, clinician, registry_data, center
):
    sign_in(page, clinician.username)
    page.emulate_media(media="print")
    for url in ("/patients/CT-0100/", f"/dashboard/?center={center.code}"):
        page.goto(url)
        assert not page.locator(".topbar").is_visible(), url
        assert not page.locator("footer").is_visible(), url
        assert page.get_by_role("heading", level=1).is_visible(), url
    assert not page.get_by_role("button", name="Apply").is_visible()
    assert page.locator("figure").first.is_visible()
