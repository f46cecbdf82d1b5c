"""Imports that run in the background: a job row, progress in the cache, the answer when done.

One worker at a time owns a job: it claims it with a conditional UPDATE (queued -> running), and
writes the job's answer in the import's own transaction, only if it still owns the job. The data
and the job's status therefore commit together: a worker that dies mid-import leaves nothing
saved and the job running with a heartbeat that stopped, and `import_jobs_sweep` queues it again
(or, after IMPORT_JOB_RETRIES re-queues, fails it and says to send the batch again). A job
still queued long after its message was sent is sent again (`import_jobs_resend`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation

from carttrack.queue import task_send
from imports.formats.lab_json import lab_batch_records
from imports.formats.registry import FORMATS, batch_for_job, job_finished
from imports.models import DONE, FAILED, QUEUED, RUNNING, ImportJob
from imports.services import REFUSED, ImportOutcome, import_scope, records_import

_PROGRESS = "imports:job:{}:progress"
UNEXPECTED = "The import failed unexpectedly; nothing was saved."
logger = logging.getLogger(__name__)


def lab_batch_submit(
    *,
    user,
    payload: dict,
    samples: list[dict],
    background: bool = False,
    history: bool = False,
) -> tuple[ImportJob | None, ImportOutcome | None]:
    """Import a lab batch now, or as a background job when it is larger than
    IMPORT_SYNC_MAX_SAMPLES or the sender asks (`background`): the one place that chooses.
    Returns (the queued job, None) or (None, the import's outcome). In the caller's transaction.
    `history`: the sender declared the batch a backfill of past records (`"history": true`)."""
    if background or len(samples) > settings.IMPORT_SYNC_MAX_SAMPLES:
        payload = {**payload, "history": history}
        job = job_create(kind="lab_batch", user=user, payload=payload, total=len(samples))
        return job, None
    return None, records_import(
        batch=lab_batch_records(samples), scope=import_scope(user), history=history
    )


def job_create(*, kind: str, user, payload: dict, total: int) -> ImportJob:
    """Store the job and enqueue it after commit (the worker must see the row)."""
    job = ImportJob.objects.create(
        kind=kind, user=user, payload=payload, total=total, enqueued_at=timezone.now()
    )
    _job_enqueue(job)
    return job


def _job_enqueue(job: ImportJob) -> None:
    """Send the job to the workers once the transaction commits; never fail the request: with
    Redis down the job stays queued and `import_jobs_resend` sends it when Redis is back."""
    job_id = str(job.pk)

    def enqueue():
        try:
            task_send("imports.tasks.import_job_run", job_id, retry=False)
        except Exception:  # the broker is unreachable
            logger.warning(
                "Could not enqueue import job %s; the sweep will send it again",
                job_id,
                exc_info=True,
            )

    transaction.on_commit(enqueue)


def job_progress(job: ImportJob) -> dict:
    if job.status == QUEUED:
        return {"phase": "queued", "done": 0, "total": job.total}
    if job.status in (DONE, FAILED):
        return {"phase": job.status, "done": job.total, "total": job.total}
    return cache.get(_PROGRESS.format(job.pk)) or {"phase": "checking", "done": 0, "total": 0}


def job_run(*, job_id: str) -> None:
    # Not claimed: another worker has it, or it is finished (a message redelivered by the
    # broker, or one the sweep sent again).
    if not ImportJob.claim(job_id):
        return
    job = ImportJob.objects.select_related("user").get(pk=job_id)
    # The heartbeat is outside the transaction: it must end only after the commit released the
    # row.
    with job.heartbeat(every=settings.IMPORT_JOB_HEARTBEAT_SECONDS):
        try:
            with transaction.atomic():
                result = _job_import(job)
                if not _job_finish(job, result):
                    # The sweep judged this worker dead and gave the job to another attempt:
                    # undo this one's work, so the batch is saved once.
                    logger.warning("import job %s: attempt %s lost the job", job.pk, job.attempts)
                    transaction.set_rollback(True)
        except Exception:  # the job reports its failure; nothing was saved (one transaction)
            logger.exception("import job %s failed", job.pk)
            with transaction.atomic():  # the job's answer and its upload's status together
                _job_finish(job, {"detail": UNEXPECTED, "errors": {"request": [UNEXPECTED]}})


def _job_import(job: ImportJob) -> dict:
    """The import's answer: what was saved, or every problem by its place, in the language of
    the page that queued it (a spreadsheet's; an API batch's answer stays in English)."""
    language = job.payload.get("language") if isinstance(job.payload, dict) else None
    with translation.override(language or settings.LANGUAGE_CODE):
        return _job_work(job)


def _job_work(job: ImportJob) -> dict:

    def progress(phase: str, done: int, total: int) -> None:
        cache.set(_PROGRESS.format(job.pk), {"phase": phase, "done": done, "total": total}, 3600)

    job_format = FORMATS.get(job.kind)
    if job_format is not None and job_format.run is not None:  # e.g. a spreadsheet preview
        return job_format.run(job=job, progress=progress)
    progress("checking", 0, job.total)
    batch, problems = batch_for_job(job)
    if problems:
        return {"detail": REFUSED, "errors": problems, "saved": 0}
    # A lab batch's "history": true, or the upload page's "past records" choice.
    history = isinstance(job.payload, dict) and job.payload.get("history") is True
    outcome = records_import(
        batch=batch, scope=import_scope(job.user), history=history, progress=progress
    )
    return outcome.as_json()


def _job_finish(job: ImportJob, result: dict) -> bool:
    """Store the answer if this attempt still owns the job; False when the sweep took it."""
    status = FAILED if "errors" in result else DONE
    if not job.owned().update(status=status, result=result, finished_at=timezone.now()):
        return False
    job.status, job.result = status, result
    job_finished(job)
    return True


def import_jobs_sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """Deal with every running job whose heartbeat stopped for IMPORT_JOB_STALE_SECONDS: its
    worker died, and nothing of it was saved (the import is one transaction). Queue it again,
    or fail it when it was already queued again IMPORT_JOB_RETRIES times (a batch that kills
    its worker every time, e.g. out of memory, must not loop). Returns (re-queued, failed)."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.IMPORT_JOB_STALE_SECONDS)
    requeued = failed = 0
    for job in ImportJob.silent_runs(now=now, stale_after=stale_after).select_related("user"):
        # Conditional on the same silence: a heartbeat or an answer since the read wins.
        dead = job.still_silent(now=now, stale_after=stale_after)
        if job.attempts <= settings.IMPORT_JOB_RETRIES:
            requeued += _job_requeue(job, dead)
        else:
            failed += _job_fail_dead(job, dead, now)
    return requeued, failed


def import_jobs_resend(*, now: datetime | None = None) -> int:
    """Send again every job still queued IMPORT_JOB_STALE_SECONDS after its message was sent:
    the message may be lost (the broker was down, or restarted without keeping its queue). A
    job merely waiting behind others gets a second message, which finds it claimed and does
    nothing. Returns how many were sent again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.IMPORT_JOB_STALE_SECONDS)
    waiting = Q(enqueued_at__lt=stale) | Q(enqueued_at__isnull=True, created_at__lt=stale)
    resent = 0
    for job in ImportJob.objects.filter(waiting, status=QUEUED).only("pk", "enqueued_at"):
        with transaction.atomic():
            still = ImportJob.objects.filter(waiting, pk=job.pk, status=QUEUED)
            if still.update(enqueued_at=now):
                _job_enqueue(job)
                resent += 1
    if resent:
        logger.warning("%s queued import job(s) not taken by a worker: sent again", resent)
    return resent


def _job_requeue(job: ImportJob, dead: QuerySet) -> int:
    with transaction.atomic():
        if not dead.update(status=QUEUED, enqueued_at=timezone.now()):
            return 0
        _job_enqueue(job)
    logger.warning(
        "import job %s: its worker stopped during attempt %s (nothing saved); queued again",
        job.pk,
        job.attempts,
    )
    return 1


def stopped_message(job: ImportJob) -> str:
    again = (
        "Upload the file again."
        if job.kind in ("spreadsheet", "spreadsheet_preview")
        else ("Send the batch again with a new Idempotency-Key.")
    )
    return (
        f"The worker importing this batch stopped before it finished, {job.attempts} times "
        f"(e.g. it was restarted or ran out of memory); nothing was saved. {again}"
    )


def _job_fail_dead(job: ImportJob, dead: QuerySet, now: datetime) -> int:
    message = stopped_message(job)
    result = {"detail": message, "errors": {"request": [message]}, "saved": 0}
    with transaction.atomic():
        if not dead.update(status=FAILED, result=result, finished_at=now):
            return 0
        job.status, job.result = FAILED, result
        job_finished(job)  # a spreadsheet upload is refused with the message
    logger.error(
        "import job %s (%s, %s records, sent by user %s) failed: its worker stopped %s times; "
        "nothing was saved and the sender must send the batch again",
        job.pk,
        job.kind,
        job.total,
        job.user_id,
        job.attempts,
    )
    return 1


def _job_note(job: ImportJob) -> str | None:
    """For a job a worker lost: that nothing of the lost attempt was saved, and what happens."""
    tries = settings.IMPORT_JOB_RETRIES + 1
    if job.status == QUEUED and job.attempts:
        return (
            f"The worker importing this batch stopped during attempt {job.attempts} of {tries}; "
            "nothing was saved. The job is queued again and will be imported from the start."
        )
    if job.status == RUNNING and job.attempts > 1:
        return (
            f"Attempt {job.attempts} of {tries}: the worker of the previous attempt stopped "
            "and nothing of it was saved."
        )
    return None


def job_as_json(job: ImportJob, *, url: str) -> dict:
    body = {
        "id": str(job.pk),
        "kind": job.kind,
        "status": job.status,
        "url": url,
        "progress": job_progress(job),
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
    }
    note = _job_note(job)
    if note:
        body["detail"] = note
    if job.status in (DONE, FAILED):
        body["result"] = job.result
        body["finished_at"] = job.finished_at.isoformat() if job.finished_at else None
    return body
