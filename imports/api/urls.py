from django.contrib.auth.decorators import login_not_required
from django.urls import path

from imports.api import fhir_views, views

app_name = "imports_api"

# The API authenticates itself (session or token) and answers 401/403 in JSON.
urlpatterns = [
    path("v1/lab-results/", login_not_required(views.lab_batch), name="lab_batch"),
    path("v1/jobs/<uuid:job_id>/", login_not_required(views.job_detail), name="job"),
    path("v1/fhir/", login_not_required(fhir_views.FhirBundleView.as_view()), name="fhir_bundle"),
    path(
        "v1/fhir/metadata",
        login_not_required(fhir_views.FhirMetadataView.as_view()),
        name="fhir_metadata",
    ),
    path(
        "v1/fhir/patients/<str:study_id>/",
        login_not_required(fhir_views.FhirPatientView.as_view()),
        name="fhir_patient",
    ),
]
