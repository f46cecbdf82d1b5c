"""The second factor as a clinician meets it on a phone (en-GB): set up the authenticator app
from the password page, keep the recovery codes shown once, and sign in with one of them when
the phone is lost; by keyboard, with axe-core on every page state."""

from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.steps import check_page, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(open_tab):
    return open_tab(
        locale="en-GB", timezone_id="Europe/London", viewport={"width": 390, "height": 844}
    )


def test_set_up_keep_the_codes_and_sign_in_with_one(phone, clinician):
    page = phone
    sign_in(page, clinician.username)
    page.get_by_role("link", name=clinician.get_full_name()).click()
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    check_page(page, "second factor setup")

    secret = page.get_by_test_id("otp-secret").inner_text()
    code = TOTP(b32decode(secret)).token()
    field = page.get_by_label("6-digit code from your authenticator app")
    field.focus()
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    expect(page.locator("[data-error-summary]")).to_contain_text("That code does not match")
    expect(page.locator("p.error", has_text="That code does not match")).to_be_visible()
    check_page(page, "second factor setup, wrong code")
    # django-otp checks no other code for a second after a wrong one; a person takes longer.
    expect(page.get_by_text("Too many wrong codes")).to_have_count(0)
    page.wait_for_timeout(1_200)
    page.get_by_label("6-digit code from your authenticator app").fill(f"{code:06d}")
    page.keyboard.press("Enter")

    codes = page.get_by_test_id("recovery-codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    kept = [text.strip() for text in codes.all_inner_texts()]
    check_page(page, "recovery codes shown once")
    page.get_by_role("link", name="I have kept them, continue").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "recovery-codes" not in url)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, clinician.username)
    expect(page.get_by_role("heading", name="Enter your authenticator code")).to_be_visible()
    check_page(page, "second factor at sign-in")
    page.get_by_label("recovery code").fill(kept[0].upper())
    page.keyboard.press("Enter")
    expect(page.get_by_text("You signed in with a recovery code; 9 of them left")).to_be_visible()
    check_page(page, "signed in with a recovery code")

    page.get_by_role("link", name=clinician.get_full_name()).click()
    page.get_by_role("link", name="Recovery codes for the second factor").click()
    expect(page.get_by_test_id("recovery-codes-left")).to_contain_text("9 unused")
    assert page.get_by_test_id("recovery-codes").count() == 0
    check_page(page, "recovery codes left")
