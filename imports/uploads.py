"""The spreadsheet workflow: upload → preview (what will be created, every problem) → confirm.

The web request only stores the file (`upload_receive`); a background job reads and checks it
(`upload_preview`, with progress), refusing a file over the limits (spreadsheet.Limits) before
its cells are read, so no web request ever parses a file. The parsed rows are stored with the
file's SHA-256 between the preview and the confirmation, so the confirmation imports exactly what
was previewed, and the same file again is reported as already imported (creating nothing). Large
files are imported by a background job too.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.db.models import Case, When
from django.utils import timezone, translation
from django.utils.translation import gettext

from imports.jobs import UNEXPECTED, job_create, stopped_message
from imports.models import (
    CHECKING,
    IMPORTED,
    IMPORTING,
    PREVIEWED,
    REFUSED,
    ImportJob,
    SpreadsheetUpload,
)
from imports.problems import Coded, problem_text, stored
from imports.services import import_scope, records_import, records_preview
from imports.sheet_records import rows_batch
from imports.sheets import FIELD_COLUMNS
from imports.spreadsheet import TooLarge, read_rows
from patients.ingest.records import Batch, Problem

SHEET_ORDER = ["patients", "infusions", "labs", "responses", "events", "therapies"]


def _problem_rows(problems: list[Problem]) -> list[dict]:
    """Each problem as the preview stores it: sheet, row, column, value, and what is wrong: a
    code and its parameters (put into words when shown: `problems_shown`) and the message as
    written (English for the spreadsheet's own problems; the checks' in the uploader's
    language, see `upload_preview`)."""
    out = []
    for p in problems:
        sheet, _, row = p.place.partition(" row ")
        out.append(
            {
                "sheet": sheet,
                "row": int(row) if row.isdigit() else None,
                "column": FIELD_COLUMNS.get(p.field, p.field),
                "value": "" if p.value is None else str(p.value),
                **stored(p.message),
            }
        )
    return sorted(
        out,
        key=lambda r: (
            SHEET_ORDER.index(r["sheet"]) if r["sheet"] in SHEET_ORDER else 99,
            r["row"] or 0,
        ),
    )


def problems_shown(preview: dict) -> dict:
    """The stored preview with its problems and notices in the reader's language: a coded one
    rendered now, one stored as text (before problems had codes) shown as it was written."""
    shown = dict(preview)
    shown["problems"] = [
        {**p, "message": problem_text(p)}
        for p in preview.get("problems", [])
        if isinstance(p, dict)
    ]
    shown["notices"] = [problem_text(n) for n in preview.get("notices", [])]
    return shown


def already_imported(*, user, file_hash: str) -> SpreadsheetUpload | None:
    """The imported upload of the same file that the user may be told of, their own first: one
    by anyone at the user's center; for an account attached to no center only its own (a
    superuser's: any), never another center's."""
    center = getattr(getattr(user, "profile", None), "center", None)
    uploads = SpreadsheetUpload.objects.filter(file_hash=file_hash, status=IMPORTED)
    if center is not None:
        uploads = uploads.filter(user__profile__center=center)
    elif not user.is_superuser:
        uploads = uploads.filter(user=user)
    own_first = Case(When(user=user, then=0), default=1)
    return uploads.select_related("user").order_by(own_first, "-created_at").first()


def may_open(user, upload: SpreadsheetUpload) -> bool:
    """Upload pages are their uploader's (and a superuser's)."""
    return user.is_superuser or upload.user_id == user.pk


def imported_by_message(upload: SpreadsheetUpload) -> str:
    """What a colleague is told of an upload of the same file they may not open."""
    name = upload.user.get_full_name() or upload.user.get_username()
    when = timezone.localtime(upload.created_at).strftime("%Y-%m-%d %H:%M")
    return gettext(
        "This file was already imported at your center by %(name)s (uploaded %(when)s): "
        "nothing was created."
    ) % {"name": name, "when": when}


def upload_receive(*, user, file_name: str, data: bytes, csv_sheet: str = "") -> SpreadsheetUpload:
    """Store an uploaded file and queue the job that reads and checks it (`upload_preview`);
    nothing is parsed here and nothing clinical is written."""
    file_hash = hashlib.sha256(data).hexdigest()
    previous = already_imported(user=user, file_hash=file_hash)
    if previous is not None:
        return previous  # perhaps a colleague's: see may_open
    with transaction.atomic():
        upload = SpreadsheetUpload.objects.create(
            user=user,
            file_name=file_name[:255],
            file_hash=file_hash,
            status=CHECKING,
            content=data,
            csv_sheet=csv_sheet,
        )
        upload.job = job_create(
            kind="spreadsheet_preview",
            user=user,
            payload={"upload_id": upload.pk, "language": translation.get_language() or ""},
            total=0,
        )
        upload.save(update_fields=["job"])
    return upload


def upload_preview(*, job: ImportJob, progress) -> dict:
    """Read and check a stored upload (the background job's work, in its transaction): the
    rows, what would be created and every problem, or the refusal of a file over the limits.
    Run in the uploader's language (the job's payload): the spreadsheet's own problems are
    stored with codes and rendered when shown, but the checks' messages are stored as written."""
    with translation.override(job.payload.get("language") or settings.LANGUAGE_CODE):
        return _upload_preview(job=job, progress=progress)


def _upload_preview(*, job: ImportJob, progress) -> dict:
    upload = SpreadsheetUpload.objects.select_for_update().get(pk=job.payload["upload_id"])
    if upload.status != CHECKING:
        return {"upload": upload.pk, "status": upload.status}
    progress("reading", 0, 0)
    scope = import_scope(upload.user)
    notices: list[str] = []
    try:
        rows, problems, notices = read_rows(
            upload.file_name, bytes(upload.content), upload.csv_sheet
        )
    except TooLarge as error:  # nothing of the file was read
        upload.status, upload.rows, upload.content = REFUSED, {}, b""
        problem = Problem(upload.file_name, "", None, error.message)
        upload.preview = {"problems": _problem_rows([problem]), "row_count": 0}
        upload.save(update_fields=["status", "rows", "content", "preview"])
        return {"upload": upload.pk, "status": upload.status}
    row_count = sum(len(r) for r in rows.values())
    progress("checking", 0, row_count)
    batch, cell_problems = rows_batch(rows, scope)
    problems += cell_problems
    plan, check_problems = records_preview(batch=batch, scope=scope)
    problems += check_problems
    existing = sorted(
        {r.study_id for r in batch.patients} & {p.study_id for p in plan.patients.values() if p.pk}
    )
    upload.status = REFUSED if problems else PREVIEWED
    upload.rows = rows if not problems else {}
    upload.content = b""
    upload.preview = {
        "counts": plan.counts(),
        "existing_patients": existing,
        "problems": _problem_rows(_once(problems)),
        "notices": notices,
        "row_count": row_count,
    }
    upload.save(update_fields=["status", "rows", "content", "preview"])
    progress("checking", row_count, row_count)
    return {"upload": upload.pk, "status": upload.status}


def _once(problems: list[Problem]) -> list[Problem]:
    """Each problem once: the same message for the same cell (a sample's time checked for each
    of its values) is shown once."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        key = (p.place, FIELD_COLUMNS.get(p.field, p.field), p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def upload_preview_failed(job: ImportJob) -> None:
    """A preview job that failed (its worker stopped too often, or it crashed): the upload is
    refused with the job's message, so its page never waits for ever."""
    upload = SpreadsheetUpload.objects.select_for_update().filter(job=job, status=CHECKING)
    upload = upload.first()
    if upload is None:
        return
    messages = [m for texts in job.result.get("errors", {}).values() for m in texts]
    coded = {UNEXPECTED: Coded("job_unexpected"), stopped_message(job): _stopped(job)}
    upload.status, upload.content = REFUSED, b""
    upload.preview = {
        "problems": [
            {"sheet": "", "row": None, "column": "", "value": "", **stored(coded.get(m, m))}
            for m in messages
        ]
    }
    upload.save(update_fields=["status", "content", "preview"])


def _stopped(job: ImportJob) -> Coded:
    return Coded("job_stopped", count=job.attempts)


def upload_batch(upload_id: int) -> tuple[Batch | None, dict]:
    upload = SpreadsheetUpload.objects.select_related("user").get(pk=upload_id)
    batch, problems = rows_batch(upload.rows, import_scope(upload.user))
    if problems:
        return None, {p.key: [p.message] for p in problems}
    return batch, {}


def upload_confirm(
    *, upload: SpreadsheetUpload, user, history: bool = False
) -> tuple[SpreadsheetUpload, bool]:
    """Import a previewed upload: inline when small, else as a background job. Returns the
    upload and whether this call confirmed it (False: it was confirmed before, or refused).
    `history`: the user chose "past records" on the page: what it raises is history.

    The upload is re-read under its row lock and its new status is written in the same
    transaction as the import, so a second confirm (a double click, a second tab) waits for the
    first and then finds it imported (or importing) and does nothing."""
    with transaction.atomic():
        upload = SpreadsheetUpload.objects.select_for_update().get(pk=upload.pk)
        if upload.status != PREVIEWED:
            return upload, False  # confirmed twice, or refused: nothing more to do
        if already_imported(user=user, file_hash=upload.file_hash) is not None:
            upload.status = REFUSED
            upload.preview = {**upload.preview, "already_imported": True}
            upload.save(update_fields=["status", "preview"])
            return upload, True
        if upload.preview.get("row_count", 0) > settings.IMPORT_INLINE_MAX_ROWS:
            upload.job = job_create(
                kind="spreadsheet",
                user=user,
                payload={
                    "upload_id": upload.pk,
                    "history": history,
                    "language": translation.get_language() or "",
                },
                total=upload.preview["row_count"],
            )
            upload.status = IMPORTING
            upload.save(update_fields=["job", "status"])
            return upload, True
        batch, problems = upload_batch(upload.pk)
        outcome = (
            records_import(batch=batch, scope=import_scope(user), history=history)
            if batch
            else None
        )
        if outcome is None or not outcome.ok:
            _refuse(upload, outcome.as_json()["errors"] if outcome else problems)
        else:
            _imported(upload, outcome.as_json())
    return upload, True


def _imported(upload: SpreadsheetUpload, result: dict) -> None:
    # The rows held restricted identifiers (MRN, name) only until they were imported.
    upload.status, upload.rows = IMPORTED, {}
    upload.preview = {**upload.preview, "result": {**result, "ids": []}}
    upload.save(update_fields=["status", "rows", "preview"])


def _refuse(upload: SpreadsheetUpload, errors: dict) -> None:
    problems = [
        Problem(key.rsplit(".", 1)[0], key.rsplit(".", 1)[-1] if "." in key else "", None, m)
        for key, messages in errors.items()
        for m in messages
    ]
    upload.status = REFUSED
    upload.preview = {**upload.preview, "problems": _problem_rows(problems)}
    upload.save(update_fields=["status", "preview"])


def upload_finished(job: ImportJob) -> None:
    """Record a spreadsheet job's outcome on its upload; called in the transaction that stores
    the job's answer (jobs._job_finish), so the data, the job and the upload commit together."""
    upload = SpreadsheetUpload.objects.select_for_update().filter(job=job, status=IMPORTING)
    upload = upload.first()
    if upload is None:
        return
    if "errors" in job.result:
        _refuse(upload, job.result["errors"])
    else:
        _imported(upload, job.result)
