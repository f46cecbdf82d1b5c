"""The import API: lab batches (synchronous up to a size, else a background job), job status.

Errors are JSON of the API's one shape (patients.api.errors: `{"detail", "errors"}`), each
problem named by its place in the request (`samples[1].values[0].unit`); a batch is all or
nothing. An `Idempotency-Key` header makes a re-sent batch return the first answer (for
IDEMPOTENCY_KEY_DAYS; an older key is new again). A collection time without a UTC offset is the
patient's center's local time; the 201 answer echoes each stored sample's time in that zone and
its clinical day.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from carttrack.request_safety import SafeJSONParser
from imports.formats.lab_json import (
    LabBatchResultSerializer,
    LabBatchSerializer,
)
from imports.held import lab_api_unplaced_hold
from imports.idempotency import (
    KeyReusedError,
    key_answer,
    key_claim,
    key_problem,
    request_hash,
)
from imports.jobs import job_as_json, lab_batch_submit
from imports.models import ImportJob
from patients.api.errors import ERROR_RESPONSES, ErrorSerializer, error_body

STUDY_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
ANSWERS = {**ERROR_RESPONSES, 422: ErrorSerializer}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any string of up to 255 characters naming this batch, e.g. the laboratory run. Sent "
        "again with the same body, the first answer is given again (header "
        "`Idempotent-Replayed: true`), never a duplicate error; with another body it is a 422. "
        "A refused batch (400) leaves its key unused. A key is remembered for "
        f"{settings.IDEMPOTENCY_KEY_DAYS} days (setting `IDEMPOTENCY_KEY_DAYS`): presented later "
        "it is treated as a new key, so re-sending the same batch then is refused as a "
        "duplicate. A background job (202) that failed because its worker stopped saved "
        "nothing; its key still answers with that job, so send the batch again with a new key."
    ),
)


def _wants_async(request) -> bool:
    return request.query_params.get("async") in ("1", "true") or "respond-async" in (
        request.headers.get("Prefer", "").lower()
    )


def _job_url(request, job: ImportJob) -> str:
    return request.build_absolute_uri(reverse("imports_api:job", args=[job.pk]))


def _read_whole_body(request) -> None:
    """Django's size limit (DATA_UPLOAD_MAX_MEMORY_SIZE) applies when the body is read as a
    whole; read it so, and an oversized request is a JSON 413 (patients.api.errors), not parsed
    at any size."""
    request._request.body  # noqa: B018


@extend_schema(
    request=LabBatchSerializer,
    responses={201: LabBatchResultSerializer, 202: dict, **ANSWERS},
    parameters=[
        IDEMPOTENCY_KEY,
        OpenApiParameter("async", str, OpenApiParameter.QUERY, required=False),
    ],
)
@api_view(["POST"])
def lab_batch(request):
    """Record many samples for patients the user may enter results for, all or nothing.

    A refused batch whose samples name a patient unknown at the sender's center also keeps
    those samples' values in the center's held results (`held` in the answer lists them, by
    place): they are imported once the patient is registered."""
    if not request.user.has_perm("patients.add_labresult"):
        raise PermissionDenied("You may not enter lab results.")
    _read_whole_body(request)
    parsed = LabBatchSerializer(data=request.data)
    parsed.is_valid(raise_exception=True)  # 400 in the one error shape
    samples = parsed.validated_data["samples"]
    unplaced: list[tuple[int, dict]] = []  # samples whose patient is unknown: held

    def run() -> tuple[int, dict]:
        job, outcome = lab_batch_submit(
            user=request.user,
            payload=request.data,
            samples=samples,
            background=_wants_async(request),
            history=parsed.validated_data["history"],
        )
        if job is not None:
            return status.HTTP_202_ACCEPTED, job_as_json(job, url=_job_url(request, job))
        code = status.HTTP_201_CREATED if outcome.ok else status.HTTP_400_BAD_REQUEST
        unknown = {p.place for p in outcome.problems if p.field == "study_id"}
        unplaced[:] = [
            (i, s) for i, s in enumerate(request.data["samples"]) if f"samples[{i}]" in unknown
        ]
        return code, outcome.as_json()

    response = _answer_once(request, run)
    if response.status_code == status.HTTP_400_BAD_REQUEST and unplaced:
        # The batch is refused as before; the values of unknown patients are also kept in the
        # center's held results (after the refusal's rollback), imported once registered.
        response.data["held"] = lab_api_unplaced_hold(user=request.user, samples=unplaced)
    return response


def _answer_once(request, run) -> Response:
    """Run an import in one transaction, answering a re-sent request (same Idempotency-Key and
    body) with the first answer. A refused import rolls back and leaves its key unclaimed."""
    key = request.headers.get("Idempotency-Key", "").strip()
    problem = key_problem(key)
    if problem:
        body = error_body(
            400, "The Idempotency-Key header is not valid.", {"Idempotency-Key": [problem]}
        )
        return Response({**body, "saved": 0}, status=status.HTTP_400_BAD_REQUEST)
    with transaction.atomic():
        claim = None
        if key:
            try:
                claim, first = key_claim(
                    sender=request.user, key=key, digest=request_hash(request.data)
                )
            except KeyReusedError as error:
                body = error_body(
                    422,
                    "This Idempotency-Key was used for another request.",
                    {"Idempotency-Key": [str(error)]},
                )
                return Response({**body, "saved": 0}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
            if not first:
                replay = Response(claim.response, status=claim.status_code)
                replay["Idempotent-Replayed"] = "true"
                return replay
        code, body = run()
        if code >= 400:
            transaction.set_rollback(True)
            return Response(body, status=code)
        if claim is not None:
            key_answer(claim, status_code=code, response=body)
    response = Response(body, status=code)
    if code == status.HTTP_202_ACCEPTED:
        response["Location"] = body["url"]
    return response


class FhirJSONParser(SafeJSONParser):
    """FHIR's JSON media type (the FHIR views are in imports/api/fhir_views.py), with the same
    depth and NUL limits as every API parser."""

    media_type = "application/fhir+json"


@extend_schema(responses={200: dict, **ERROR_RESPONSES})
@api_view(["GET"])
def job_detail(request, job_id):
    """A background import: its status, progress and, once finished, its answer.

    A job whose worker stopped mid-import (restarted, out of memory) saved nothing: it is queued
    again (`attempts` counts the tries, `detail` says so), and after IMPORT_JOB_RETRIES further
    tries it is `failed` with a `result` saying that nothing was saved and to send the batch again.
    """
    jobs = ImportJob.objects.all()
    if not request.user.is_superuser:
        jobs = jobs.filter(user=request.user)  # a sender sees its own jobs only
    job = get_object_or_404(jobs, pk=job_id)
    return Response(job_as_json(job, url=_job_url(request, job)))
