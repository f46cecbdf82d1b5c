"""The FHIR R4 endpoint: POST a Bundle to the base, GET one patient's results, GET /metadata.

Every answer is `application/fhir+json` (a client that asks for `application/json` gets the same
body as that); every error, whatever its status (400, 401, 403, 404, 405, 413, 500), is an
OperationOutcome naming each problem by its place (`entry[3].resource.code`).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import translation
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from carttrack.request_safety import SafeJSONParser
from imports.api.views import (
    ANSWERS,
    IDEMPOTENCY_KEY,
    STUDY_ID_PATTERN,
    FhirJSONParser,
    _answer_once,
    _read_whole_body,
)
from imports.fhir_codes import CONFIRMED_EXTENSION
from imports.fhir_import import bundle_import
from imports.fhir_read import bundle_read
from imports.fhir_write import capability_statement, operation_outcome, patient_bundle
from imports.services import import_scope
from patients.api.errors import ERROR_RESPONSES
from patients.identifiers import STUDY_ID_MAX_LENGTH
from patients.selectors import patients_visible_to


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir+json"


ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


class FhirView(APIView):
    renderer_classes = [FhirJSONRenderer, JSONRenderer]
    parser_classes = [FhirJSONParser, SafeJSONParser]

    def dispatch(self, request, *args, **kwargs):
        # Machine texts stay English (issue 23): the OperationOutcome's diagnostics are read by a
        # laboratory system, whatever Accept-Language its HTTP client sends.
        with translation.override("en"):
            return super().dispatch(request, *args, **kwargs)

    def handle_exception(self, exc):
        """The API's error (patients.api.errors) as an OperationOutcome."""
        response = super().handle_exception(exc)
        body = response.data if isinstance(response.data, dict) else {}
        issues = [
            ("error", ISSUE_CODE.get(response.status_code, "exception"), place, text)
            for place, texts in (body.get("errors") or {}).items()
            for text in texts
        ] or [
            (
                "error",
                ISSUE_CODE.get(response.status_code, "exception"),
                "",
                str(body.get("detail", "The request was refused.")),
            )
        ]
        response.data = operation_outcome(issues)
        return response


class FhirBundleView(FhirView):
    @extend_schema(
        request=dict,
        responses={200: dict, 201: dict, **ANSWERS},
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "A FHIR R4 Bundle. `transaction`: all or nothing, answered with a "
            "transaction-response Bundle; `batch`: entry by entry, answered with a "
            "batch-response; `collection`, `document`, `message`: their monitored Observations, "
            "all or nothing, answered with an OperationOutcome. What is not monitored is skipped "
            "and counted (severity information), never an error. Patients are matched by their "
            "study-ID identifier only (FHIR_STUDY_ID_SYSTEM). An Observation whose value is "
            "refused as unusual (a soft plausibility limit) is kept when sent again with the "
            f'extension {{"url": "{CONFIRMED_EXTENSION}", "valueBoolean": true}}; values beyond '
            "a hard limit are refused whatever the extension says. Errors are OperationOutcome."
        ),
    )
    def post(self, request):
        if not request.user.has_perm("patients.add_labresult"):
            raise PermissionDenied("You may not enter lab results.")
        _read_whole_body(request)
        data = request.data
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            return Response(
                operation_outcome([("error", "invalid", "resourceType", "Send a FHIR Bundle.")]),
                status=400,
            )
        intake = bundle_read(data)

        def run() -> tuple[int, dict]:
            return bundle_import(intake=intake, scope=import_scope(request.user))

        response = _answer_once(request, run)
        if response.status_code >= 400 and "resourceType" not in response.data:
            # a reused Idempotency-Key: the API's error shape as an OperationOutcome
            errors = response.data.get("errors") or {"": [response.data.get("detail", "")]}
            response.data = operation_outcome(
                [("error", "conflict", k, t) for k, texts in errors.items() for t in texts]
            )
        return response


class FhirPatientView(FhirView):
    @extend_schema(
        responses={200: dict, **ERROR_RESPONSES},
        parameters=[
            OpenApiParameter(
                "study_id",
                {"type": "string", "maxLength": STUDY_ID_MAX_LENGTH, "pattern": STUDY_ID_PATTERN},
                OpenApiParameter.PATH,
                required=True,
            )
        ],
    )
    def get(self, request, study_id: str):
        """One patient's lab results as a FHIR Bundle (study ID only, no name or MRN)."""
        if not request.user.has_perm("patients.view_labresult"):
            raise PermissionDenied("You may not read lab results.")
        patient = get_object_or_404(patients_visible_to(request.user), study_id=study_id)
        return Response(patient_bundle(patient))


class FhirMetadataView(FhirView):
    permission_classes = [AllowAny]  # a client reads what the server does before signing in

    @extend_schema(responses={200: dict})
    def get(self, request):
        """The CapabilityStatement of this FHIR endpoint."""
        base = request.build_absolute_uri(request.path.rsplit("metadata", 1)[0])
        return Response(capability_statement(base))
