"""Patient pages. Views parse input, call one service or selector, and render the result."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from monitoring.selectors import (
    alert_changes_since,
    alert_event_mark,
    detectable_bcell_result_ids,
    open_alerts_by_patient,
)
from patients import forms, plausibility_checks, selectors, services
from patients.formats import human_date
from patients.models import (
    Center,
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.units import ANALYTES

# The clinical records edited on their own pages: URL name -> (model, form, label).
RECORDS = {
    "infusion": (Infusion, forms.InfusionForm, gettext_lazy("infusion")),
    "lab": (LabResult, forms.LabResultForm, gettext_lazy("lab result")),
    "response": (ResponseAssessment, forms.ResponseForm, gettext_lazy("response assessment")),
    "event": (ClinicalEvent, forms.EventForm, gettext_lazy("clinical event")),
    "therapy": (PreemptiveTherapy, forms.TherapyForm, gettext_lazy("pre-emptive therapy")),
}
# The pages' titles and messages of each kind of record (whole sentences: word order differs).
TITLES = {
    "infusion": (gettext_lazy("Add infusion"), gettext_lazy("Correct infusion")),
    "lab": (gettext_lazy("Add lab result"), gettext_lazy("Correct lab result")),
    "response": (
        gettext_lazy("Add response assessment"),
        gettext_lazy("Correct response assessment"),
    ),
    "event": (gettext_lazy("Add clinical event"), gettext_lazy("Correct clinical event")),
    "therapy": (
        gettext_lazy("Add pre-emptive therapy"),
        gettext_lazy("Correct pre-emptive therapy"),
    ),
}


def _patient_for(request, study_id: str) -> Patient:
    return get_object_or_404(selectors.patients_visible_to(request.user), study_id=study_id)


def _apply_errors(form, error: ValidationError, aliases: dict | None = None) -> None:
    """Show a service's errors beside the form's fields (or above the form)."""
    if hasattr(error, "error_dict"):
        for field, messages_ in error.message_dict.items():
            field = (aliases or {}).get(field, field)
            target = field if field in form.fields else None
            for message in messages_:
                if message not in form.errors.get(target or "__all__", []):
                    form.add_error(target, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


@require_http_methods(["GET"])
def patient_list(request):
    # A search can never match control characters (and PostgreSQL refuses a NUL in text).
    search = "".join(c for c in request.GET.get("q", "") if c.isprintable())[:100]
    page = Paginator(selectors.patient_list(request.user, search=search), 50).get_page(
        request.GET.get("page")
    )
    rows = selectors.patient_rows(list(page.object_list))
    alerts = open_alerts_by_patient([row.patient.pk for row in rows])
    detectable_ids = detectable_bcell_result_ids([row.patient.pk for row in rows])
    for row in rows:
        row.open_alerts = alerts[row.patient.pk]
        row.last_bcell_detectable = bool(row.last_bcell and row.last_bcell.pk in detectable_ids)
    return render(
        request, "patients/patient_list.html", {"page": page, "rows": rows, "search": search}
    )


@require_http_methods(["GET"])
def patient_detail(request, study_id: str):
    patient = _patient_for(request, study_id)
    infusions = list(patient.infusions.order_by("infusion_date"))
    lab_columns, samples = selectors.patient_samples(patient)
    for sample in samples:
        sample.row_cells = sample.cells(lab_columns)
    status = selectors.clinical_status_by_patient([patient.pk])[patient.pk]
    last_count = selectors.last_bcell_count(samples)
    detectable_ids = detectable_bcell_result_ids([patient.pk])
    context = {
        "patient": patient,
        "status": status,
        "window": selectors.window_today(patient, infusions, timezone.now()),
        "last_count": last_count,
        # Whether it shows B cells is the rules' decision, with the center's definition.
        "detectable_ids": detectable_ids,
        "last_count_detectable": bool(last_count and last_count[1].pk in detectable_ids),
        "can_correct": {
            kind: request.user.has_perm(f"patients.change_{model._meta.model_name}")
            for kind, (model, _form, _label) in RECORDS.items()
        },
        "infusions": infusions,
        "age_at_infusion": patient.age_on(infusions[0].infusion_date) if infusions else None,
        "lab_columns": [ANALYTES[code] for code in lab_columns],
        "samples": samples,
        "responses": patient.responses.all(),
        "events": patient.events.all(),
        "therapies": patient.therapies.all(),
        "history": selectors.patient_history(patient, limit=20),
        "show_identifiers": request.user.has_perm("patients.view_identifiers"),
    }
    return render(request, "patients/patient_detail.html", context)


def _centers_for(user):
    if user.is_superuser or user.has_perm("patients.view_all_centers"):
        return Center.objects.all()
    profile = getattr(user, "profile", None)
    return Center.objects.filter(pk=profile.center_id if profile else None)


@require_http_methods(["GET", "POST"])
def patient_edit(request, study_id: str | None = None):
    patient = _patient_for(request, study_id) if study_id else Patient()
    if not request.user.has_perm("patients.change_patient" if study_id else "patients.add_patient"):
        raise PermissionDenied
    centers = _centers_for(request.user)
    form = forms.PatientForm(
        request.POST if request.method == "POST" else None,
        instance=patient,
        user=request.user,
        centers=centers,
    )
    if request.method == "POST" and form.is_valid():
        try:
            patient = form.save(commit=False)
            services.patient_save(
                patient=patient, user=request.user, hematologists=form.cleaned_data["hematologists"]
            )
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(
                request, _("Patient %(study_id)s saved.") % {"study_id": patient.study_id}
            )
            return redirect("patients:detail", study_id=patient.study_id)
    return render(
        request,
        "patients/record_form.html",
        {
            "form": form,
            "patient": patient if study_id else None,
            "title": _("Edit patient %(study_id)s") % {"study_id": patient.study_id}
            if study_id
            else _("New patient"),
        },
    )


@require_http_methods(["GET", "POST"])
def sample_add(request, study_id: str):
    """Record one sample: a collection date and time with several analytes."""
    patient = _patient_for(request, study_id)
    if not request.user.has_perm("patients.add_labresult"):
        raise PermissionDenied
    form = forms.SampleForm(request.POST if request.method == "POST" else None, patient=patient)
    if request.method == "POST" and form.is_valid():
        mark = alert_event_mark(patient)
        try:
            results = services.lab_results_record(
                patient=patient,
                collected_at=form.collected_at(),
                values=form.lab_values(),
                entered_by=request.user,
            )
        except ValidationError as error:
            unconfirmed = _unconfirmed_analytes(error)
            if unconfirmed:  # before the errors are shown (they take values off cleaned_data)
                form.ask_confirmation(unconfirmed, date=form.date_confirmed())
            _apply_errors(form, error, aliases={"collected_at": "collected_date"})
        else:
            _sample_saved_message(request, patient, results, mark)
            return redirect("patients:detail", study_id=patient.study_id)
    return render(
        request,
        "patients/sample_form.html",
        {"form": form, "patient": patient, "date_echo": _date_echo(patient)},
    )


def _date_echo(patient) -> dict:
    """What static/js/date_echo.js needs to show a typed date as read, with its day after the
    infusion: the patient's infusion dates and the sentences in the active language."""
    dates = patient.infusions.order_by("infusion_date").values_list("infusion_date", flat=True)
    return {
        "infusions": ",".join(d.isoformat() for d in dates),
        "day": _("Read as %(date)s: day %(day)s after the infusion of %(infusion)s."),
        "plain": _("Read as %(date)s (no infusion is recorded yet)."),
    }


def _unconfirmed_analytes(error: ValidationError) -> list[str]:
    """The analytes refused only for want of a confirmation (soft plausibility limits)."""
    found = []
    for key, errors in getattr(error, "error_dict", {}).items():
        analyte, _, field = key.partition("-")
        if field == "value" and any(e.code == plausibility_checks.UNCONFIRMED for e in errors):
            found.append(analyte)
    return found


def _sample_saved_message(request, patient, results, mark: int) -> None:
    """Say what the save did, including any alert it raised or withdrew, with a link to it."""
    when = human_date(results[0].collected_at.astimezone(patient.center.tzinfo))
    saved = ngettext(
        "%(count)s result recorded for %(date)s.",
        "%(count)s results recorded for %(date)s.",
        len(results),
    ) % {"count": len(results), "date": when}
    changes = alert_changes_since(patient, mark)
    if not changes:
        messages.success(request, saved)
        return
    parts = []
    for event in changes:
        alert = event.alert
        if event.new_status == "open":
            sentence = _(
                'This sample raised a %(severity)s alert: <a href="%(url)s">%(title)s</a>.'
            )
        elif event.new_status == "withdrawn":
            sentence = _('This sample withdrew the alert: <a href="%(url)s">%(title)s</a>.')
        else:
            sentence = _('This sample updated the alert: <a href="%(url)s">%(title)s</a>.')
        parts.append(
            format_html(
                sentence.replace("%(severity)s", "{severity}")
                .replace("%(url)s", "{url}")
                .replace("%(title)s", "{title}"),
                severity=str(alert.get_severity_display()).upper(),
                url=alert.get_absolute_url(),
                title=alert.title_display,
            )
        )
    raised_high = any(e.new_status == "open" and e.alert.severity == "high" for e in changes)
    text = format_html("{} {}", saved, format_html_join(" ", "{}", ((p,) for p in parts)))
    (messages.warning if raised_high else messages.info)(request, text)


def _record_kind(kind: str):
    if kind not in RECORDS:
        raise Http404(_("Unknown kind of record"))
    return RECORDS[kind]


@require_http_methods(["GET", "POST"])
def record_edit(request, study_id: str, kind: str, pk: int | None = None):
    patient = _patient_for(request, study_id)
    # Times are shown and typed in the patient's center's time zone.
    with timezone.override(patient.center.tzinfo):
        return _record_edit(request, patient, kind, pk)


def _record_edit(request, patient, kind: str, pk: int | None):
    model, form_class, label = _record_kind(kind)
    action = "change" if pk else "add"
    if not request.user.has_perm(f"patients.{action}_{model._meta.model_name}"):
        raise PermissionDenied
    instance = get_object_or_404(model, pk=pk, patient=patient) if pk else model(patient=patient)
    form = form_class(request.POST if request.method == "POST" else None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            services.clinical_record_save(instance=form.save(commit=False), user=request.user)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Saved: %(record)s.") % {"record": label})
            return redirect("patients:detail", study_id=patient.study_id)
    return render(
        request,
        "patients/record_form.html",
        {
            "form": form,
            "patient": patient,
            "kind": kind,
            "instance": instance if pk else None,
            "title": TITLES[kind][1 if pk else 0],
            "date_echo": _date_echo(patient) if kind != "infusion" else None,
        },
    )


@require_POST
def record_delete(request, study_id: str, kind: str, pk: int):
    patient = _patient_for(request, study_id)
    model, _form, label = _record_kind(kind)
    if not request.user.has_perm(f"patients.delete_{model._meta.model_name}"):
        raise PermissionDenied
    instance = get_object_or_404(model, pk=pk, patient=patient)
    services.clinical_record_delete(instance=instance, user=request.user)
    messages.success(request, _("Deleted: %(record)s; its history is kept.") % {"record": label})
    return redirect("patients:detail", study_id=patient.study_id)


@require_http_methods(["GET"])
def record_history(request, study_id: str, kind: str | None = None, pk: int | None = None):
    patient = _patient_for(request, study_id)
    if kind is not None and kind not in selectors.AUDITED:
        raise Http404(_("Unknown kind of record"))
    changes = selectors.patient_history(patient, kind=kind, record_id=pk)
    return render(
        request,
        "patients/history.html",
        {"patient": patient, "changes": changes, "kind": kind, "pk": pk},
    )
