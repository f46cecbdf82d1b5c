"""Imports that run in the background: a job row, progress in the cache, the answer when done."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from imports.models import DONE, FAILED, QUEUED, RUNNING, ImportJob
from imports.services import REFUSED, import_scope, records_import

_PROGRESS = "imports:job:{}:progress"
logger = logging.getLogger(__name__)


def job_create(*, kind: str, user, payload: dict, total: int) -> ImportJob:
    """Store the job and enqueue it after commit (the worker must see the row)."""
    from imports.tasks import import_job_run

    job = ImportJob.objects.create(kind=kind, user=user, payload=payload, total=total)
    transaction.on_commit(lambda: import_job_run.delay(str(job.pk)))
    return job


def job_progress(job: ImportJob) -> dict:
    if job.status == QUEUED:
        return {"phase": "queued", "done": 0, "total": job.total}
    if job.status in (DONE, FAILED):
        return {"phase": job.status, "done": job.total, "total": job.total}
    return cache.get(_PROGRESS.format(job.pk)) or {"phase": "checking", "done": 0, "total": 0}


def job_run(*, job_id: str) -> None:
    from imports.formats.registry import batch_for_job

    claimed = ImportJob.objects.filter(pk=job_id, status=QUEUED).update(status=RUNNING)
    if not claimed:  # another worker has it, or it is finished (a redelivered message)
        return
    job = ImportJob.objects.select_related("user").get(pk=job_id)

    def progress(phase: str, done: int, total: int) -> None:
        cache.set(_PROGRESS.format(job.pk), {"phase": phase, "done": done, "total": total}, 3600)

    progress("checking", 0, job.total)
    try:
        batch, problems = batch_for_job(job)
        if problems:
            result = {"detail": REFUSED, "errors": problems, "saved": 0}
        else:
            outcome = records_import(batch=batch, scope=import_scope(job.user), progress=progress)
            result = outcome.as_json()
    except Exception:  # the job reports its failure; nothing was saved (one transaction)
        logger.exception("import job %s failed", job.pk)
        result = {
            "detail": "The import failed unexpectedly; nothing was saved.",
            "errors": {"request": ["The import failed unexpectedly; nothing was saved."]},
        }
    status = FAILED if "errors" in result else DONE
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, result=result, finished_at=timezone.now()
    )
    from imports.formats.registry import job_finished

    job.status, job.result = status, result
    job_finished(job)


def job_as_json(job: ImportJob, *, url: str) -> dict:
    body = {
        "id": str(job.pk),
        "kind": job.kind,
        "status": job.status,
        "url": url,
        "progress": job_progress(job),
        "created_at": job.created_at.isoformat(),
    }
    if job.status in (DONE, FAILED):
        body["result"] = job.result
        body["finished_at"] = job.finished_at.isoformat() if job.finished_at else None
    return body
