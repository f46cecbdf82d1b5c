"""The formats a background import job can carry, by kind (as healthchecks registers its channel
kinds): each reads the job's payload into records and may act when the job ends.

The formats are registered in `ImportsConfig.ready()`, so this module and `imports.jobs` name
none of them (no import circle through the spreadsheet upload, which creates jobs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from imports.models import ImportJob
from patients.ingest.records import Batch


def _nothing(job: ImportJob) -> None:
    return None


@dataclass(frozen=True)
class JobFormat:
    kind: str
    # The job's records, or the problems found while reading them ({place: [message]}).
    records: Callable[[dict], tuple[Batch | None, dict]]
    # Called in the import's transaction once the job has its answer (done or refused).
    finished: Callable[[ImportJob], None] = _nothing


FORMATS: dict[str, JobFormat] = {}


def format_register(job_format: JobFormat) -> None:
    FORMATS[job_format.kind] = job_format


def batch_for_job(job: ImportJob) -> tuple[Batch | None, dict]:
    """The job's records, or the problems found while reading them ({place: [message]})."""
    try:
        job_format = FORMATS[job.kind]
    except KeyError:
        raise ValueError(f"unknown job kind {job.kind!r}") from None
    return job_format.records(job.payload)


def job_finished(job: ImportJob) -> None:
    job_format = FORMATS.get(job.kind)  # an unknown kind has already failed in batch_for_job
    if job_format is not None:
        job_format.finished(job)
