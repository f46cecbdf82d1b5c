"""Password change (Django's validators) and reset by e-mail."""

import re

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db


def test_password_change_applies_the_validators_then_changes_it(client, clinician):
    client.force_login(clinician)
    weak = client.post(
        "/account/password/",
        {"old_password": "pw-for-tests", "new_password1": "12345678", "new_password2": "12345678"},
    )
    assert weak.status_code == 200
    assert "too common" in weak.content.decode() or "entirely numeric" in weak.content.decode()
    strong = "Marrow-window-45-days"
    response = client.post(
        "/account/password/",
        {"old_password": "pw-for-tests", "new_password1": strong, "new_password2": strong},
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.check_password(strong)


def test_password_reset_by_email_link(client, clinician):
    assert client.get("/account/password/reset/").status_code == 200
    client.post("/account/password/reset/", {"email": clinician.email})
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "CT-" not in body  # no patient data in it
    link = re.search(r"https?://[^/]+(/account/password/reset/\S+/\S+/)", body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.content.decode()
    new = "Regeneration-day-46-late"
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.check_password(new)
    # The link works once.
    assert "no longer works" in client.get(link, follow=True).content.decode()


def test_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, clinician):
    response = client.post("/account/password/reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302 and len(mail.outbox) == 0
