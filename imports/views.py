"""Spreadsheet upload pages for data managers: thin views over `imports.uploads`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from imports import uploads
from imports.forms import UploadForm
from imports.held import held_result_dismiss, held_results_retry, retry_message
from imports.jobs import job_progress
from imports.models import HELD, IMPORTED, IMPORTING, HeldResult, SpreadsheetUpload
from imports.sheets import SHEETS, template

ENTER_DATA = "patients.add_labresult"


def _own_upload(request, pk: int) -> SpreadsheetUpload:
    upload_row = get_object_or_404(SpreadsheetUpload.objects.select_related("job"), pk=pk)
    if not uploads.may_open(request.user, upload_row):
        raise Http404
    return upload_row


@require_http_methods(["GET", "POST"])
@permission_required(ENTER_DATA, raise_exception=True)
def upload(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        received = form.cleaned_data["file"]
        result = uploads.upload_receive(
            user=request.user,
            file_name=received.name,
            data=received.read(),
            csv_sheet=form.cleaned_data["csv_sheet"],
        )
        if not uploads.may_open(request.user, result):  # a colleague imported the same file
            messages.info(request, uploads.imported_by_message(result))
            return redirect("imports:upload")
        return redirect("imports:detail", pk=result.pk)
    recent = SpreadsheetUpload.objects.filter(user=request.user)[:10]
    return render(
        request, "imports/upload.html", {"form": form, "recent": recent, "sheets": list(SHEETS)}
    )


@require_GET
@permission_required(ENTER_DATA, raise_exception=True)
def template_download(request, fmt: str):
    sheet = request.GET.get("sheet", "labs")
    if fmt not in ("xlsx", "csv") or sheet not in SHEETS:
        raise Http404
    name = "carttrack-import.xlsx" if fmt == "xlsx" else f"carttrack-{sheet}.csv"
    content_type = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if fmt == "xlsx"
        else "text/csv; charset=utf-8"
    )
    response = HttpResponse(template(fmt, sheet), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@permission_required(ENTER_DATA, raise_exception=True)
def upload_detail(request, pk: int):
    upload_row = _own_upload(request, pk)
    return render(
        request,
        "imports/upload_detail.html",
        {
            "upload": upload_row,
            "preview": uploads.problems_shown(upload_row.preview),
            "already_imported": upload_row.status == IMPORTED,
        },
    )


@require_POST
@permission_required(ENTER_DATA, raise_exception=True)
def upload_confirm(request, pk: int):
    upload_row, confirmed = uploads.upload_confirm(
        upload=_own_upload(request, pk),
        user=request.user,
        history=request.POST.get("history") == "1",
    )
    if not confirmed and upload_row.status == IMPORTED:
        messages.info(
            request, gettext("This upload was already imported: nothing more was created.")
        )
    elif not confirmed and upload_row.status == IMPORTING:
        messages.info(
            request, gettext("This upload is already being imported: nothing more was started.")
        )
    return redirect("imports:detail", pk=pk)


@require_GET
@permission_required(ENTER_DATA, raise_exception=True)
def upload_status(request, pk: int):
    upload_row = _own_upload(request, pk)
    progress = job_progress(upload_row.job) if upload_row.job else {}

    return JsonResponse({"status": upload_row.status, "progress": progress})


# --- Held results: the center's queue ----------------------------------------------------------


def _held_queue(user):
    queue = HeldResult.objects.select_related("center", "dismissed_by")
    if user.is_superuser:
        return queue
    profile = getattr(user, "profile", None)
    if profile is None or profile.center_id is None:
        return queue.none()
    return queue.filter(center_id=profile.center_id)


@require_GET
@permission_required(ENTER_DATA, raise_exception=True)
def held_results(request):
    queue = _held_queue(request.user)
    return render(
        request,
        "imports/held_results.html",
        {
            "held": queue.filter(state=HELD)[:200],
            "held_count": queue.filter(state=HELD).count(),
            "resolved": queue.exclude(state=HELD).order_by("-resolved_at", "-pk")[:20],
        },
    )


@require_POST
@permission_required(ENTER_DATA, raise_exception=True)
def held_results_retry_view(request):
    centers = {h.center for h in _held_queue(request.user).filter(state=HELD)}
    imported = still = 0
    for center in centers:
        outcome = held_results_retry(center=center, user=request.user)
        imported += outcome.imported
        still += outcome.still_held
    messages.info(request, retry_message(imported, still))
    return redirect("imports:held")


@require_POST
@permission_required(ENTER_DATA, raise_exception=True)
def held_result_dismiss_view(request, pk: int):
    held = get_object_or_404(_held_queue(request.user), pk=pk)
    try:
        held_result_dismiss(held=held, user=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.info(
            request,
            gettext("Dismissed: %(code)s for %(patient)s.")
            % {"code": held.code, "patient": held.identifier or gettext("no patient")},
        )
    return redirect("imports:held")
