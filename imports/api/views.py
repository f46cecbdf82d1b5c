"""The import API: lab batches (synchronous up to a size, else a background job), job status.

Errors are JSON, each named by its place in the request (`samples[1].values[0].unit`); a batch
is all or nothing. An `Idempotency-Key` header makes a re-sent batch return the first answer.
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

from imports.formats.lab_json import LabBatchSerializer, flatten_errors, lab_batch_records
from imports.idempotency import KeyReusedError, key_answer, key_claim, request_hash
from imports.jobs import job_as_json, job_create
from imports.models import ImportJob
from imports.services import import_scope, records_import


def _wants_async(request) -> bool:
    return request.query_params.get("async") in ("1", "true") or "respond-async" in (
        request.headers.get("Prefer", "").lower()
    )


def _job_url(request, job: ImportJob) -> str:
    return request.build_absolute_uri(reverse("imports_api:job", args=[job.pk]))


@extend_schema(
    request=LabBatchSerializer,
    responses={201: dict, 202: dict, 400: dict, 422: dict},
    parameters=[
        OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
        OpenApiParameter("async", str, OpenApiParameter.QUERY, required=False),
    ],
)
@api_view(["POST"])
def lab_batch(request):
    """Record many samples for patients the user may enter results for, all or nothing."""
    if not request.user.has_perm("patients.add_labresult"):
        raise PermissionDenied("You may not enter lab results.")
    parsed = LabBatchSerializer(data=request.data)
    if not parsed.is_valid():
        return Response(
            {"errors": flatten_errors(parsed.errors), "saved": 0},
            status=status.HTTP_400_BAD_REQUEST,
        )
    samples = parsed.validated_data["samples"]
    key = request.headers.get("Idempotency-Key", "").strip()
    with transaction.atomic():
        claim = None
        if key:
            try:
                claim, first = key_claim(
                    sender=request.user, key=key[:255], digest=request_hash(request.data)
                )
            except KeyReusedError as error:
                return Response(
                    {"errors": {"Idempotency-Key": [str(error)]}, "saved": 0},
                    status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                )
            if not first:
                replay = Response(claim.response, status=claim.status_code)
                replay["Idempotent-Replayed"] = "true"
                return replay
        if len(samples) > settings.IMPORT_SYNC_MAX_SAMPLES or _wants_async(request):
            job = job_create(
                kind="lab_batch", user=request.user, payload=request.data, total=len(samples)
            )
            code, body = status.HTTP_202_ACCEPTED, job_as_json(job, url=_job_url(request, job))
        else:
            outcome = records_import(
                batch=lab_batch_records(samples), scope=import_scope(request.user)
            )
            if not outcome.ok:
                transaction.set_rollback(True)  # and the key stays unclaimed
                return Response(outcome.as_json(), status=status.HTTP_400_BAD_REQUEST)
            code, body = status.HTTP_201_CREATED, outcome.as_json()
        if claim is not None:
            key_answer(claim, status_code=code, response=body)
    response = Response(body, status=code)
    if code == status.HTTP_202_ACCEPTED:
        response["Location"] = body["url"]
    return response


@extend_schema(responses={200: dict})
@api_view(["GET"])
def job_detail(request, job_id):
    """A background import: its status, progress and, once finished, its answer."""
    jobs = ImportJob.objects.all()
    if not request.user.is_superuser:
        jobs = jobs.filter(user=request.user)  # a sender sees its own jobs only
    job = get_object_or_404(jobs, pk=job_id)
    return Response(job_as_json(job, url=_job_url(request, job)))
