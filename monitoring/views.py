"""Alert pages: the inbox, one alert with its basis, acknowledge and close."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from monitoring import notifications, selectors, services
from monitoring.forms import AlertCloseForm, InboxFilterForm, PreferencesForm
from monitoring.worklist import with_course_status, worklist
from patients.models import Center


def _can_act(user) -> bool:
    # Acting on an alert is a clinical decision: those who may record therapies may act.
    return user.has_perm("patients.add_preemptivetherapy")


@require_http_methods(["GET"])
def inbox(request):
    centers = Center.objects.filter(
        patients__in=selectors.patients_visible_to(request.user)
    ).distinct()
    form = InboxFilterForm(request.GET or None, centers=centers)
    filters = form.cleaned_data if form.is_valid() else {}
    alerts = selectors.alert_inbox(
        request.user,
        severity=filters.get("severity", ""),
        center=filters.get("center", ""),
        status=filters.get("status", ""),
    )
    page = Paginator(alerts, 50).get_page(request.GET.get("page"))
    with_course_status(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "monitoring/inbox.html",
        {"form": form, "page": page, "query": query.urlencode(), "can_act": _can_act(request.user)},
    )


@require_http_methods(["GET"])
def today(request):
    """The home page: what a hematologist needs to look at today."""
    return render(
        request,
        "monitoring/worklist.html",
        {"work": worklist(request.user), "can_act": _can_act(request.user)},
    )


def _render_detail(request, alert, close_form, status=200, focus_close=False):
    return render(
        request,
        "monitoring/alert_detail.html",
        {
            "alert": with_course_status([alert])[0],
            "events": alert.events.select_related("user"),
            "escalations": alert.escalations.all(),
            "close_form": close_form,
            "can_act": _can_act(request.user),
            "undelivered": notifications.undelivered(alert.notifications.all()).select_related(
                "recipient"
            ),
            "focus_close": focus_close or bool(close_form.errors),
        },
        status=status,
    )


@require_http_methods(["GET"])
def alert_detail(request, pk: int):
    alert = get_object_or_404(selectors.alerts_visible_to(request.user), pk=pk)
    return _render_detail(
        request,
        alert,
        AlertCloseForm(patient=alert.patient),
        focus_close=request.GET.get("acknowledged") == "1",
    )


@require_POST
def alert_acknowledge(request, pk: int):
    alert = get_object_or_404(selectors.alerts_visible_to(request.user), pk=pk)
    if not _can_act(request.user):
        raise PermissionDenied
    try:
        services.alert_acknowledge(alert=alert, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            gettext("Alert acknowledged: %(study_id)s — %(title)s.")
            % {"study_id": alert.patient.study_id, "title": alert.title_display},
        )
    target = request.POST.get("next", "")
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        # Never off-site; by default straight on to the close form, in the same place.
        target = f"{alert.get_absolute_url()}?acknowledged=1"  # focus.js scrolls there
    # A path, never a view name: redirect("0") would look "0" up as a view and fail.
    return HttpResponseRedirect(target)


@require_POST
def alert_close(request, pk: int):
    alert = get_object_or_404(selectors.alerts_visible_to(request.user), pk=pk)
    if not _can_act(request.user):
        raise PermissionDenied
    form = AlertCloseForm(request.POST, patient=alert.patient)
    if form.is_valid():
        try:
            services.alert_close(
                alert=alert,
                user=request.user,
                outcome=form.cleaned_data["outcome"],
                reason=form.cleaned_data["reason"],
                therapy=form.cleaned_data["therapy"],
                new_therapy=form.new_therapy(),
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.message_dict.items():
                    target = {
                        "start_date": "start_date",
                        "agent": "agent",
                        "category": "agent",
                        "reason": "reason",
                        "therapy": "therapy",
                    }.get(field)
                    for message in errors:
                        form.add_error(target, message)
            else:
                for message in error.messages:
                    form.add_error(None, message)
        else:
            messages.success(
                request,
                gettext("Alert closed: %(study_id)s — %(title)s.")
                % {"study_id": alert.patient.study_id, "title": alert.title_display},
            )
            return redirect(alert.get_absolute_url())
    alert.refresh_from_db()
    return _render_detail(request, alert, form, status=400)


@require_http_methods(["GET", "POST"])
def preferences(request):
    """The signed-in user's notification preferences."""
    profile = services.profile_for(user=request.user)
    form = PreferencesForm(
        request.POST if request.method == "POST" else None,
        initial={"email_low_severity": profile.email_low_severity, "language": profile.language},
    )
    if request.method == "POST" and form.is_valid():
        language = form.cleaned_data["language"]
        services.notification_preferences_update(
            user=request.user,
            email_low_severity=form.cleaned_data["email_low_severity"],
            language=language,
        )
        # Said in the language just chosen, as the next page will be.
        translation.activate(language or translation.get_language_from_request(request))
        messages.success(request, gettext("Your notification preferences were saved."))
        return redirect("monitoring:preferences")
    return render(request, "monitoring/preferences.html", {"form": form, "profile": profile})
