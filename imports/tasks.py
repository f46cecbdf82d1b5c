"""Celery tasks of the imports: thin wrappers around a service (schedules: carttrack/celery.py)."""

from celery import shared_task

from imports import idempotency, jobs


# Acknowledged when done (CELERY_TASK_ACKS_LATE); a message redelivered after a worker died, or
# sent again by the sweep, finds the job no longer queued and does nothing.
@shared_task(ignore_result=True)
def import_job_run(job_id: str) -> None:
    jobs.job_run(job_id=job_id)


@shared_task(ignore_result=True)
def sweep_import_jobs() -> None:
    jobs.import_jobs_sweep()
    jobs.import_jobs_resend()


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> None:
    idempotency.keys_purge()
