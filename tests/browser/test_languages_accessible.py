"""axe-core on every page state at 1280 and 390 px in the three languages (issue 23, item 4):
a browser asking for en-GB, de-DE or zh-CN (Playwright's `locale`, which also sets
Accept-Language) may meet no critical and no serious violation anywhere.

One test per language keeps the run short: each role signs in once in its own tab, each page is
loaded once and checked at both widths (the window is resized in place), and every violation
found is collected and reported together, so one run shows all that is left to fix.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.browser.axe import blocking_violations, horizontal_overflow
from tests.browser.steps import sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser
SIZES = [(1280, 900), (390, 844)]
LANGUAGES = ["en-GB", "de-DE", "zh-CN"]

CLINICIAN_PAGES = [
    "/",
    "/patients/",
    "/patients/CT-0100/",
    "/patients/CT-0100/history/",
    "/patients/CT-0100/samples/add/",
    "/patients/CT-0100/infusion/add/",
    "/alerts/",
    "/alerts/?status=all",
    "/alerts/preferences/",
    "/dashboard/",
    "/dashboard/data-dictionary/",
    "/dashboard/tables/",
    "/imports/",
    "/imports/held/",
    "/account/password/",
]


@pytest.fixture
def rule_users(center, roles):
    """The rule-performance page's three readers: registry staff (every center, pooled), a
    center's rule administrator (that center only) and a superuser (the admin's pages too)."""
    registry = UserFactory(username="registry-axe", center=None)
    registry.groups.add(roles["registry"])
    center_admin = UserFactory(username="rules-alpha", center=center)
    center_admin.user_permissions.add(Permission.objects.get(codename="view_ruleparameterset"))
    admin = UserFactory(username="admin-axe", center=None, is_staff=True, is_superuser=True)
    return {"registry": registry, "center": center_admin, "admin": admin}


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_page_state_in_every_language_passes_axe(
    open_tab, clinician, registry_data, rule_users, locale
):
    problems: list[str] = []

    def check(page, state: str) -> None:
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            where = f"{locale} {width} px {state} ({page.url})"
            problems.extend(f"{where}: {v}" for v in blocking_violations(page))
            overflow = horizontal_overflow(page)
            if overflow:
                problems.append(f"{where}: {overflow}")

    def visit(page, url: str) -> None:
        page.goto(url)
        page.wait_for_load_state("load")
        check(page, url)

    anonymous = open_tab(locale=locale)
    visit(anonymous, "/login/")
    visit(anonymous, "/account/password/reset/")
    anonymous.goto("/login/")
    anonymous.locator("[name=username]").fill("nobody")
    anonymous.locator("[name=password]").fill("wrong")
    anonymous.locator("form button[type=submit]").click()
    check(anonymous, "the login form with an error")

    tab = open_tab(locale=locale)
    sign_in(tab, clinician.username)
    for url in CLINICIAN_PAGES:
        visit(tab, url)
    # The sample form sent back with errors: a letter for a number and no date.
    tab.goto("/patients/CT-0100/samples/add/")
    tab.locator("[name=collected_date]").fill("")
    tab.locator("[name='pb_bcell_abs-value']").fill("x")
    tab.locator("form.sample-form button[type=submit]").click()
    tab.wait_for_load_state("load")
    check(tab, "the sample form with errors")
    alert_url = registry_data.get_absolute_url()
    visit(tab, alert_url)
    tab.locator("#close form.close-form button[type=submit]").click()  # no outcome chosen
    tab.wait_for_load_state("load")
    check(tab, "the close form with an error")

    for role, urls in [
        ("registry", ["/dashboard/rules/", "/dashboard/"]),
        ("center", ["/dashboard/rules/"]),
        (
            "admin",
            [
                "/dashboard/rules/",
                "/admin/",
                "/admin/monitoring/ruleparameterset/",
                "/admin/monitoring/ruleparameterset/add/",
            ],
        ),
    ]:
        tab = open_tab(locale=locale)
        sign_in(tab, rule_users[role].username)
        for url in urls:
            visit(tab, url)

    assert not problems, f"{len(problems)} blocking problems:\n" + "\n".join(problems)
