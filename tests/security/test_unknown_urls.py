"""An unknown URL is a 404 page whoever asks (issue 21 finding 4: signed in it was a 500, as
base.html read the resolver match that a 404 has none of); the favicon is served."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

UNKNOWN = [
    "/no-such-page/",
    "/patients/AU-0001/nothing/here/",
    "/dashboard/snapshots/x/figures.json",
    "/alerts/not-a-number/",
    "/imports/nothing/",
    "/admin/nothing/",
    "/static-not-here.png",
]


@pytest.mark.parametrize("role", [None, "clinician", "registry", "stranger", "admin_user"])
def test_unknown_urls_are_404_pages_for_every_role(request, role):
    client = Client()
    if role:
        client.force_login(request.getfixturevalue(role))
    for url in UNKNOWN:
        response = client.get(url)
        if response.status_code == 302 and (role is None or url.startswith("/admin/")):
            assert "login" in response["Location"]  # signed out / not staff: to a sign-in page
            continue
        assert response.status_code == 404, url
        if role and not url.startswith("/admin/"):
            assert "CARTtrack" in response.content.decode(), url


@pytest.mark.parametrize("role", [None, "clinician"])
def test_the_favicon_is_served_and_linked(request, role, client):
    if role:
        client.force_login(request.getfixturevalue(role))
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("favicon.svg")
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])
    if role:
        page = client.get("/").content.decode()
        assert 'rel="icon"' in page and "favicon.svg" in page
