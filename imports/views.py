"""Spreadsheet upload pages for data managers: thin views over `imports.uploads`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from imports import uploads
from imports.forms import UploadForm
from imports.jobs import job_progress
from imports.models import IMPORTED, IMPORTING, SpreadsheetUpload
from imports.spreadsheet import SHEETS, template

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
            "preview": upload_row.preview,
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
        messages.info(request, "This upload was already imported: nothing more was created.")
    elif not confirmed and upload_row.status == IMPORTING:
        messages.info(request, "This upload is already being imported: nothing more was started.")
    return redirect("imports:detail", pk=pk)


@require_GET
@permission_required(ENTER_DATA, raise_exception=True)
def upload_status(request, pk: int):
    upload_row = _own_upload(request, pk)
    progress = job_progress(upload_row.job) if upload_row.job else {}
    return JsonResponse({"status": upload_row.status, "progress": progress})
