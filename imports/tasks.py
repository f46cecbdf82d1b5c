"""Celery tasks of the imports: thin wrappers that call a service."""

from celery import shared_task

from imports import jobs


@shared_task(ignore_result=True)
def import_job_run(job_id: str) -> None:
    jobs.job_run(job_id=job_id)
