"""Every response that shows a patient's data writes an access event, by rule (audit/middleware
``_kind``), not by a hand list: the test walks every URL pattern that names a patient or a
record of a patient-bearing app (pages, admin, API) as each role, and every 200 must have left
its event (issue 21 finding 3)."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from audit.middleware import NOT_PATIENT_DATA, PATIENT_APPS
from audit.models import AccessEvent
from tests.factories import (
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
    ResponseFactory,
    TherapyFactory,
)

pytestmark = pytest.mark.django_db

KINDS = {
    "infusion": InfusionFactory,
    "lab": LabResultFactory,
    "response": ResponseFactory,
    "event": EventFactory,
    "therapy": TherapyFactory,
}


def _patterns(resolver=None, prefix="", namespace=""):
    """(route, view name) of every URL pattern."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            space = entry.namespace or namespace
            yield from _patterns(entry, route, f"{space}" if space else namespace)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            yield route, name


@pytest.fixture
def records(center, clinician):
    patient = PatientFactory(center=center, study_id="AU-0001", mrn="MRN-AU-1")
    patient.hematologists.add(clinician)
    made = {kind: factory(patient=patient) for kind, factory in KINDS.items()}
    return patient, made


def _urls(patient, made) -> list[str]:
    """Concrete URLs of every pattern with a patient (or a patient-bearing record) in it."""
    urls = []
    for route, name in _patterns():
        if name.startswith("admin:"):
            model_name = name[len("admin:") :].rsplit("_", 1)[0]
            app, _, model = model_name.partition("_")
            if app not in PATIENT_APPS or "<" not in route:
                continue
            if "object_id" not in route:
                continue
            try:
                model_class = apps.get_model(app, model)
            except LookupError:
                continue
            obj = model_class.objects.order_by("pk").first()
            if obj is None:
                continue
            urls.append("/" + route.replace("<path:object_id>", str(obj.pk)))
            continue
        namespace = name.split(":", 1)[0]
        if "study_id>" not in route and not (
            namespace in PATIENT_APPS and "<int:pk>" in route and name not in NOT_PATIENT_DATA
        ):
            continue
        kinds = list(KINDS) if "<str:kind>" in route else [None]
        for kind in kinds:
            url = re.sub(r"<(sid|str|path):study_id>", patient.study_id, route)
            if kind:
                url = url.replace("<str:kind>", kind).replace("<int:pk>", str(made[kind].pk))
            url = url.replace("<int:pk>", "0")  # an alert or upload that does not exist: 404
            if "<" not in url:
                urls.append("/" + url)
    return sorted(set(urls))


@pytest.mark.parametrize("role", ["clinician", "registry", "stranger", "admin_user"])
def test_every_url_with_a_patient_in_it_writes_an_access_event(request, role, records):
    patient, made = records
    user = request.getfixturevalue(role)
    client = Client()
    client.force_login(user)
    urls = _urls(patient, made)
    # The unaudited reads, besides every pattern walked.
    urls += [f"/patients/?q={patient.mrn}", f"/admin/patients/patient/?q={patient.mrn}"]
    shown = []
    for url in urls:
        before = AccessEvent.objects.count()
        response = client.get(url)
        assert response.status_code < 500, url
        if response.status_code == 200:
            shown.append(url)
            event = AccessEvent.objects.order_by("pk").last()
            assert AccessEvent.objects.count() == before + 1, url
            assert event.username == user.get_username() and event.path == url.split("?")[0]
    print(f"\n{role}: {len(urls)} URLs walked, {len(shown)} shown and audited")
    assert len(urls) >= 25
    if role == "clinician":  # her own patient: every page of it opens
        for needed in ["/edit/", "/samples/add/", "/history/", "/lab/", "/infusion/", "?q="]:
            assert any(needed in url for url in shown), needed
    if role == "admin_user":
        assert any(url.startswith("/admin/patients/patient/") for url in shown)
        assert any(url.startswith("/admin/patients/labresult/") for url in shown)
