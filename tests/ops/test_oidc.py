"""Sign-in with OpenID Connect: mozilla-django-oidc against a real certified provider (the npm
package oidc-provider, tests/oidc/provider.mjs) started here on a free port, driven with
requests through the provider's own login and consent pages; claims → role and center; signing
out at the provider ends the CARTtrack session (back-channel logout)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from html import unescape
from pathlib import Path

import pytest
import requests

from patients.models import ClinicianProfile

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("node") or not (OIDC_DIR / "node_modules" / "oidc-provider").exists(),
        reason="needs node and `npm ci` in tests/oidc (.ci/run does it)",
    ),
]
ACCOUNTS = {
    "ada": {
        "preferred_username": "ada.oidc",
        "email": "ada@hospital.example",
        "given_name": "Ada",
        "family_name": "Hem",
        "roles": ["hematologist"],
        "center": "alpha",
    },
    "rita": {"preferred_username": "rita.oidc", "roles": ["registry", "unrelated"]},
    "nora": {"preferred_username": "nora.oidc", "roles": ["canteen"]},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def provider(live_server, settings, tmp_path, center, roles):
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    backchannel = live_server.url.replace("localhost", "127.0.0.1")
    config = {
        "port": port,
        "client": {
            "client_id": "carttrack",
            "client_secret": "carttrack-test-secret",
            "redirect_uris": [f"{live_server.url}/oidc/callback/"],
            "post_logout_redirect_uris": [f"{live_server.url}/login/"],
            # 127.0.0.1, not localhost: node would try ::1 first, where the live server is not.
            "backchannel_logout_uri": f"{backchannel}/oidc/backchannel-logout/",
            "backchannel_logout_session_required": True,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        },
        "accounts": ACCOUNTS,
    }
    (tmp_path / "provider.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        ["node", str(OIDC_DIR / "provider.mjs"), str(tmp_path / "provider.json")],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "provider.log", "w"),
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("listening"), (tmp_path / "provider.log").read_text()
    settings.OIDC_OP_ISSUER = issuer
    settings.OIDC_RP_CLIENT_ID = "carttrack"
    settings.OIDC_RP_CLIENT_SECRET = "carttrack-test-secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{issuer}/auth"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{issuer}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{issuer}/me"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{issuer}/jwks"
    settings.OIDC_RP_SCOPES = "openid email profile carttrack"
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_STORE_ID_TOKEN = True
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "accounts.oidc.ProviderBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    yield issuer
    process.terminate()
    process.wait(timeout=10)


def _form(page: requests.Response) -> tuple[str, dict]:
    action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return requests.compat.urljoin(page.url, action), fields


def _sign_in(browser: requests.Session, live_url: str, account: str) -> requests.Response:
    """Through the provider's own pages: its login form, then its consent form."""
    page = browser.get(f"{live_url}/oidc/authenticate/", timeout=30)
    assert "/interaction/" in page.url, page.url
    action, fields = _form(page)
    page = browser.post(action, data={**fields, "login": account, "password": "any"}, timeout=30)
    if "/interaction/" in page.url:  # consent
        action, fields = _form(page)
        page = browser.post(action, data=fields, timeout=30)
    return page


def test_provider_sign_in_maps_claims_and_provider_logout_ends_the_session(
    provider, live_server, django_user_model
):
    login_page = requests.get(f"{live_server.url}/login/", timeout=30).text
    assert 'href="/oidc/authenticate/"' in login_page and "hospital account" in login_page
    browser = requests.Session()
    page = _sign_in(browser, live_server.url, "ada")
    assert page.url == f"{live_server.url}/", page.url
    assert page.status_code == 200
    ada = django_user_model.objects.get(username="ada.oidc")
    assert [g.name for g in ada.groups.all()] == ["Clinicians"]
    assert ClinicianProfile.objects.get(user=ada).center.code == "alpha"
    assert (ada.email, ada.last_name, ada.has_usable_password()) == (
        "ada@hospital.example",
        "Hem",
        False,
    )

    # Sign out at the provider: its end-session page, confirmed.
    page = browser.get(f"{provider}/session/end", timeout=30)
    action, fields = _form(page)
    browser.post(action, data={**fields, "logout": "yes"}, timeout=30)
    page = browser.get(f"{live_server.url}/", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login/")


def test_claims_without_a_carttrack_role_are_refused_and_registry_has_no_center(
    provider, live_server, django_user_model
):
    page = _sign_in(requests.Session(), live_server.url, "nora")
    assert "/login/" in page.url  # back at CARTtrack's sign-in page, not signed in
    assert not django_user_model.objects.filter(username="nora.oidc", groups__isnull=False)

    browser = requests.Session()
    page = _sign_in(browser, live_server.url, "rita")
    assert page.url == f"{live_server.url}/"
    rita = django_user_model.objects.get(username="rita.oidc")
    assert [g.name for g in rita.groups.all()] == ["Registry staff"]
    assert ClinicianProfile.objects.get(user=rita).center is None
