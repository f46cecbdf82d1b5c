"""Who may see and change what: sign-in, centers, roles, methods and the login lockout.

The URL list comes from Django's resolver, so a page added later is checked without anyone
remembering to add it here (CLINICAL.md section 2: users and patients belong to one center).
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from django.utils.regex_helper import normalize

from patients.selectors import AUDITED
from patients.views import RECORDS
from tests.factories import (
    BERLIN,
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
    ResponseFactory,
    TherapyFactory,
)

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's password

# Pages that must open without signing in; every other page of the site needs a signed-in user.
PUBLIC = {"login", "admin:login"}
# Open before sign-in on purpose, with what each answers an anonymous GET here: the operations
# endpoints (metrics only to its token or addresses), the icon browsers ask for, and the OpenID
# Connect flow (404 while OIDC_OP_ISSUER is empty; its back-channel logout takes a POST).
LOGIN_FREE = {
    "health_live": {200},
    "health_ready": {200, 503},
    "metrics": {404},
    "favicon": {301},
    "oidc_authentication_callback": {404},
    "oidc_authentication_init": {404},
    "oidc_backchannel_logout": {400, 405},
}
# The parts of the site this module guards: the project's own pages, the patients app, the admin.
COVERED_NAMESPACES = {"", "patients", "admin", "monitoring", "analytics"}


@dataclass(frozen=True)
class Page:
    name: str  # "namespace:url_name", or the route for an unnamed pattern
    path: str
    kwargs: dict


def _url_patterns(resolver=None, prefix=(), namespaces=()):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _url_patterns(
                pattern,
                (*prefix, pattern.pattern),
                (*namespaces, pattern.namespace) if pattern.namespace else namespaces,
            )
        else:
            assert isinstance(pattern, URLPattern)
            yield ":".join(namespaces), (*prefix, pattern.pattern), pattern


_ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def _fill(patterns, values: dict) -> tuple[str, dict]:
    """The concrete path of a chain of route/regex patterns, with `values` for its parameters."""
    path, used = "/", {}

    def value_of(name):
        assert name in values, f"give the URL parameter {name!r} a sample value in this test"
        used[name] = values[name]
        return quote(str(values[name]))

    for pattern in patterns:
        text = str(pattern)
        if isinstance(pattern, RoutePattern):
            path += _ROUTE_PARAMETER.sub(lambda m: value_of(m["parameter"]), text)
        else:
            ((template, parameters),) = normalize(text)[:1]
            path += template % {p: value_of(p) for p in parameters}
    return path, used


def site_pages(values_for) -> list[Page]:
    """Every page of the covered namespaces, its URL parameters filled in by `values_for`.

    `values_for(name)` returns a list of {parameter: value} dicts: one page is made for each.
    """
    pages = []
    for namespace, chain, pattern in _url_patterns():
        if namespace not in COVERED_NAMESPACES:
            continue
        # Unnamed patterns (the admin's catch-all) are named by their route.
        local = pattern.name or "".join(str(p) for p in chain)
        name = f"{namespace}:{local}" if namespace else local
        for values in values_for(name):
            path, used = _fill(chain, values)
            match = resolve(path)
            assert match.func is pattern.callback, f"{path} does not resolve to {name}"
            pages.append(Page(name, path, used))
    return pages


# A Center Alpha patient with one record of every kind ----------------------------------------


@pytest.fixture
def records(center):
    patient = PatientFactory(
        center=center, study_id="CT-0001", mrn="MRN-5511", full_name="Erika Mustermann"
    )
    infusion = InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return {
        "patient": patient,
        "infusion": infusion,
        "lab": LabResultFactory(
            patient=patient, collected_at=datetime(2025, 3, 15, 8, tzinfo=BERLIN)
        ),
        "response": ResponseFactory(patient=patient),
        "event": EventFactory(patient=patient),
        "therapy": TherapyFactory(patient=patient),
    }


def _record_values(records):
    """Sample URL values: the real patient, and each kind of record with its real pk."""

    def values_for(name):
        base = {
            "study_id": records["patient"].study_id,
            "object_id": records["patient"].pk,
            "content_type_id": 1,
            "id": 1,
            "_0": 1,
            "_1": 1,
            "app_label": "patients",
            "url": "no-such-page/",
            "pk": 1,
        }
        if name.startswith("patients:record_history"):
            kinds = list(AUDITED)
        elif name.startswith("patients:record_"):
            kinds = list(RECORDS)
        else:
            return [base]
        return [{**base, "kind": kind, "pk": records[kind].pk} for kind in kinds]

    return values_for


def patient_pages(records) -> list[Page]:
    return [p for p in site_pages(_record_values(records)) if p.name.startswith("patients:")]


# Signing in ----------------------------------------------------------------------------------


def test_every_page_but_the_login_pages_sends_an_anonymous_visitor_to_sign_in(client, records):
    pages = site_pages(_record_values(records))
    assert {p.name for p in pages} >= {
        "patients:list",
        "patients:detail",
        "patients:edit",
        "patients:record_delete",
        "admin:index",
        "home",
    }
    assert PUBLIC <= {p.name for p in pages}, "a public page has disappeared"
    for page in pages:
        response = client.get(page.path)
        if page.name in PUBLIC:
            assert response.status_code == 200, page
            continue
        if page.name in LOGIN_FREE:
            assert response.status_code in LOGIN_FREE[page.name], (page, response.status_code)
            assert "/login/" not in response.get("Location", ""), page
            continue
        # Django's admin sends some pages to its own sign-in form (staff only); both sign-in
        # forms count failures with axes.
        logins = ["/login/", "/admin/login/"] if page.name.startswith("admin:") else ["/login/"]
        assert response.status_code == 302, page
        assert response["Location"] in [f"{login}?next={quote(page.path)}" for login in logins], (
            page
        )


def test_the_login_page_opens_and_signs_in_a_clinician(client, clinician):
    page = client.get("/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()
    response = client.post(
        "/login/?next=/patients/",
        {"username": "clinician", "password": PASSWORD, "next": "/patients/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/patients/"
    assert client.get("/patients/").status_code == 200


def test_a_wrong_password_does_not_sign_in(client, clinician):
    response = client.post("/login/", {"username": "clinician", "password": "not-it"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_five_failed_logins_lock_the_account_even_for_the_right_password(client, clinician):
    for _attempt in range(5):
        client.post("/login/", {"username": "clinician", "password": "guess"})
    response = client.post("/login/", {"username": "clinician", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code in (403, 429)
    assert client.get("/patients/").status_code == 302


def test_four_failed_logins_do_not_lock_the_account(client, clinician):
    for _attempt in range(4):
        client.post("/login/", {"username": "clinician", "password": "guess"})
    response = client.post("/login/", {"username": "clinician", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(clinician.pk)


# Centers and roles ---------------------------------------------------------------------------


def _method_for(page: Page) -> str:
    return "post" if page.name == "patients:record_delete" else "get"


def test_every_patient_page_opens_for_a_clinician_of_the_patients_center(
    client, clinician, records
):
    client.force_login(clinician)
    for page in patient_pages(records):
        if _method_for(page) == "get":
            assert client.get(page.path).status_code == 200, page


def test_a_clinician_of_another_center_gets_not_found_for_every_patient_page(
    client, stranger, records
):
    client.force_login(stranger)
    pages = [p for p in patient_pages(records) if "study_id" in p.kwargs]
    assert len(pages) >= 8
    for page in pages:
        assert getattr(client, _method_for(page))(page.path).status_code == 404, page
        if page.name in EDIT_PAGES:  # nor change anything
            assert client.post(page.path, {}).status_code == 404, page
    for kind in RECORDS:
        record = records[kind]
        assert type(record).objects.filter(pk=record.pk).exists(), f"the {kind} was deleted"


def test_a_clinician_of_another_center_does_not_find_the_patient_in_the_list(
    client, stranger, records
):
    client.force_login(stranger)
    link = 'href="/patients/CT-0001/"'
    assert link not in client.get("/patients/").content.decode()
    found = client.get("/patients/", {"q": "CT-0001"}).content.decode()
    assert link not in found
    assert "No patients match" in found


def test_registry_staff_see_patients_of_every_center(client, registry, records, other_center):
    beta = PatientFactory(center=other_center, study_id="CT-0900")
    client.force_login(registry)
    listing = client.get("/patients/").content.decode()
    assert 'href="/patients/CT-0001/"' in listing
    assert 'href="/patients/CT-0900/"' in listing
    assert client.get("/patients/CT-0001/").status_code == 200
    assert client.get(f"/patients/{beta.study_id}/").status_code == 200


EDIT_PAGES = {
    "patients:add",
    "patients:edit",
    "patients:sample_add",
    "patients:record_add",
    "patients:record_edit",
    "patients:record_delete",
}


def test_registry_staff_may_not_open_or_submit_any_edit_page(client, registry, records):
    client.force_login(registry)
    pages = [p for p in patient_pages(records) if p.name in EDIT_PAGES]
    assert {p.name for p in pages} == EDIT_PAGES
    for page in pages:
        if page.name != "patients:record_delete":
            assert client.get(page.path).status_code == 403, page
        assert client.post(page.path, {}).status_code == 403, page
    for kind in RECORDS:
        record = records[kind]
        assert type(record).objects.filter(pk=record.pk).exists(), f"the {kind} was deleted"


def test_registry_staff_do_not_see_identifiers(client, registry, records):
    client.force_login(registry)
    page = client.get("/patients/CT-0001/").content.decode()
    assert "MRN-5511" not in page and "Mustermann" not in page


# Methods -------------------------------------------------------------------------------------

# A method each page must refuse: reading pages take no POST, forms take no DELETE, and a
# record is deleted only by POST (a link or a prefetch must never delete anything).
WRONG_METHOD = {
    "patients:list": "post",
    "patients:detail": "post",
    "patients:history": "post",
    "patients:record_history": "post",
    "patients:add": "delete",
    "patients:edit": "delete",
    "patients:sample_add": "put",
    "patients:record_add": "delete",
    "patients:record_edit": "delete",
    "patients:record_delete": "get",
}


def test_every_patient_page_refuses_the_wrong_method(client, clinician, records):
    client.force_login(clinician)
    pages = patient_pages(records)
    assert {p.name for p in pages} == set(WRONG_METHOD), "say which method a new page refuses"
    for page in pages:
        response = getattr(client, WRONG_METHOD[page.name])(page.path)
        assert response.status_code == 405, page
    for kind in RECORDS:
        record = records[kind]
        assert type(record).objects.filter(pk=record.pk).exists(), f"GET deleted the {kind}"


def test_an_unknown_kind_of_record_is_not_found(client, clinician, records):
    client.force_login(clinician)
    assert client.get("/patients/CT-0001/vaccination/add/").status_code == 404
    assert client.get(f"/patients/CT-0001/patient/{records['patient'].pk}/edit/").status_code == 404


def test_a_record_of_another_patient_is_not_found_under_this_patient(
    client, clinician, records, center
):
    other = PatientFactory(center=center, study_id="CT-0002")
    client.force_login(clinician)
    lab = records["lab"]
    assert client.get(f"/patients/{other.study_id}/lab/{lab.pk}/edit/").status_code == 404
    assert client.post(f"/patients/{other.study_id}/lab/{lab.pk}/delete/").status_code == 404
    assert type(lab).objects.filter(pk=lab.pk).exists()
