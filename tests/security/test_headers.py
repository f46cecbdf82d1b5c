"""Content-Security-Policy without inline script, no-store on everything a signed-in user
gets (static files excepted), and no inline script or handler left in the templates."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_pages_carry_a_csp_that_forbids_inline_script(clinician_client):
    response = clinician_client.get("/patients/")
    policy = response["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in policy


@pytest.mark.parametrize(
    "path", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))
)
def test_no_template_holds_inline_script_or_handlers(path):
    text = (TEMPLATES / path).read_text()
    for tag in re.findall(r"<script\b[^>]*>", text):
        assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
    assert not re.search(r"\son[a-z]+\s*=", text), path
    assert "javascript:" not in text, path


@pytest.mark.parametrize(
    "url", ["/patients/", "/alerts/", "/dashboard/", "/dashboard/export.csv", "/api/v1/alerts/"]
)
def test_everything_a_signed_in_user_gets_is_no_store(clinician_client, url):
    response = clinician_client.get(url)
    assert response.status_code == 200, url
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_static_files_stay_cacheable(clinician_client):
    response = clinician_client.get("/static/js/dashboard.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
