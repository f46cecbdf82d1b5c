"""The survival dashboard: the latest snapshot of a cohort, its refresh, and the CSV export."""

import json

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from analytics import services
from analytics.dataset import analysis_frame, analysis_table, rows_of_center
from analytics.dataset_schema import (
    data_dictionary_markdown,
    data_dictionary_shown,
    data_dictionary_table,
)
from analytics.disclosure import DISCLOSURE_NOTE, report_shown, withheld_shown
from analytics.figure_texts import localized
from analytics.forms import CohortForm
from analytics.models import STATUS_LABELS, DashboardSnapshot, RefreshRun
from analytics.report import COMPARISON_LABELS, COMPARISONS
from carttrack.csv_safety import csv_response, read_csv
from carttrack.replica import primary_reads, replica_view
from patients.selectors import center_code_restricted_to

FIGURE_ORDER = [
    "rfs",
    "os",
    "rfs_by_early_regeneration",
    "landmark",
    "rfs_by_preemptive_category",
    "cir",
    "rfs_by_mrd_positive",
    "rfs_by_car_loss",
]


def _cohort_form(request, data=None) -> CohortForm:
    # Cohort statistics are aggregates over pseudonymous rows: every signed-in user may see
    # them for any center, as a registry's members compare their outcomes; small cells only
    # for their own center (services.small_cell_min_for), and views other than their own
    # center's are fixed cohorts (CohortForm) checked against differencing.
    if data is None:
        data = request.GET if request.method == "GET" else request.POST
    return CohortForm(data, user=request.user)


def _figures_shown(names, shown_report: dict) -> list[str]:
    """Figures whose cohort's count is shown: a curve of a withheld group is not drawn."""
    needs = {
        "rfs": [("rfs", "n")],
        "os": [("os", "n")],
        "landmark": [("landmark", "n_in_cohort")],
        "cir": [("cumulative_incidence", "n")],
    }
    out = []
    for name in names:
        if name.startswith("rfs_by_"):
            groups = shown_report.get("logrank", {}).get(name[len("rfs_by_") :], {})
            ok = all(isinstance(g.get("n"), int) for g in groups.get("groups", []))
        else:
            ok = all(isinstance(shown_report.get(a, {}).get(b), int) for a, b in needs[name])
        if ok:
            out.append(name)
    return out


@require_http_methods(["GET"])
@replica_view
def dashboard(request):
    form = _cohort_form(request)
    options = form.options() if form.is_valid() else {}
    cohort = services.cohort_from_options(options)
    snapshot = services.latest_snapshot(cohort)
    run = services.pending_run(cohort)
    if snapshot is None and run is None and options:
        with primary_reads():  # a read that decides a write asks the primary, never a replica
            snapshot = services.latest_snapshot(cohort)
            run = services.pending_run(cohort)
            if snapshot is None and run is None:
                try:
                    run = services.filtered_view_request(options=options, user=request.user)
                except services.TooManyNewViews as error:
                    context = {"form": form, "limit": str(error)}
                    page = render(request, "analytics/dashboard.html", context)
                    page.status_code = 429
                    return page
                # Without a broker the computation ran in-process, after the run was committed.
                snapshot = services.latest_snapshot(cohort)
                run = services.pending_run(cohort)
    if run is not None and run.step:
        # Shown, never saved: the step is stored as its English message (analytics.services).
        run.step = gettext(run.step)
    context = {
        "form": form,
        "snapshot": snapshot,
        "cohort": cohort,
        "run": run,
        "stale": snapshot is not None and snapshot.data_version != services.data_version(),
        "query": request.GET.urlencode(),
        "endpoint_rows": [
            ("rfs", gettext("relapse-free survival")),
            ("os", gettext("overall survival")),
        ],
    }
    if snapshot is not None:
        # Shown, never saved: the stored label is in English, the page in the reader's language.
        snapshot.cohort_label = cohort.describe()
        # The figures' data (hundreds of KB) comes from `figures_json`, cached by the browser.
        # Small cells shown only to the cohort's own center (its exact figures come from
        # their own, never-stored URL); every other viewer gets them suppressed.
        figures, own = services.snapshot_figures_for(snapshot, request.user)
        context["figures"] = [name for name in FIGURE_ORDER if name in figures]
        # The figures' texts are in the reader's language: the language is part of the URL, so
        # the browser never shows a figure kept from another language.
        figures_url = reverse(
            "analytics:figures_own" if own else "analytics:figures", args=[snapshot.pk]
        )
        language = translation.get_language() or settings.LANGUAGE_CODE
        if language != settings.LANGUAGE_CODE and language in dict(settings.LANGUAGES):
            figures_url = f"{figures_url}?{urlencode({'lang': language})}"
        context["figures_url"] = figures_url
        context["excluded"], context["n_excluded"] = services.snapshot_excluded_for(
            snapshot, request.user
        )
        minimum = services.small_cell_min_for(cohort, request.user)
        withheld = services.withheld_cells_for(cohort, request.user, snapshot.options)
        context["r"] = report_shown(snapshot.report, minimum, withheld)
        context["withheld"] = bool(withheld)
        if not own:
            context["figures"] = _figures_shown(context["figures"], context["r"])
        context["r"] = withheld_shown(context["r"])
        # jsonb does not keep key order: list the comparisons in the report's own order.
        # The report stores its group names in English (its JSON stays neutral): shown translated.
        context["comparisons"] = [
            {
                **context["r"]["logrank"][key],
                "label": COMPARISON_LABELS[key],
                "groups": _groups_shown(context["r"]["logrank"][key].get("groups", [])),
            }
            for key in COMPARISONS
            if key in context["r"].get("logrank", {})
        ]
        landmark = context["r"].get("landmark")
        if isinstance(landmark, dict) and landmark.get("groups"):
            context["r"] = {
                **context["r"],
                "landmark": {**landmark, "groups": _groups_shown(landmark["groups"])},
            }
    return render(request, "analytics/dashboard.html", context)


def _groups_shown(groups: list) -> list:
    return [
        {**g, "label": gettext(g["label"])} if isinstance(g.get("label"), str) and g["label"] else g
        for g in groups
    ]


def _figures_language(request) -> str:
    """The language of the figures' texts: the URL's ``lang`` when it names one of the
    interface's languages, else the default one. The URL alone decides it (never the reader's
    headers), as the browser keeps the response by its URL."""
    wanted = request.GET.get("lang", "")
    return wanted if wanted in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _figures_body(request, key: str, figures) -> str:
    """The figures as JSON with their texts in the language ``_figures_language`` names; the
    numbers are the stored ones, whatever the language."""
    language = _figures_language(request)

    def body() -> str:
        with translation.override(language):
            shown = {name: localized(figure) for name, figure in dict(figures()).items()}
        return json.dumps(shown, cls=DjangoJSONEncoder)

    return cache.get_or_set(f"{key}:{language}", body, timeout=24 * 3600)


@require_http_methods(["GET"])
@replica_view
def figures_json(request, pk: int):
    """A snapshot's figures as every viewer may see them (small cells suppressed) as JSON.
    Snapshots never change: serialised once (cache), and the browser may keep the response for
    a year (its URL names the snapshot, and it is the same for every user)."""

    snapshot = get_object_or_404(DashboardSnapshot.objects.only("options", "report"), pk=pk)
    cohort = services.cohort_from_options(snapshot.options)
    minimum = services.small_cell_min_for(cohort, request.user)
    withheld = services.withheld_cells_for(cohort, request.user, snapshot.options)
    shown = _figures_shown(FIGURE_ORDER, report_shown(snapshot.report, minimum, withheld))

    def figures():
        stored = DashboardSnapshot.objects.get(pk=pk)
        # `figures` of a center's cohort show the center's small cells: never here.
        every = (stored.figures_suppressed or {}) if cohort.center else stored.figures
        return {name: every[name] for name in shown if name in every}

    # The key names the variant and the figures this reader may see (the differencing rule
    # withholds a curve whose cohort's count is withheld).
    body = _figures_body(request, f"snapshot-figures-shown:{pk}:{','.join(shown)}", figures)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@require_http_methods(["GET"])
@replica_view
def figures_own_json(request, pk: int):
    """A one-center snapshot's exact figures (small cells shown), for that center's own users
    only. Never kept by the browser: another user of the same browser must not get them."""
    snapshot = get_object_or_404(DashboardSnapshot, pk=pk)
    cohort = services.cohort_from_options(snapshot.options)
    if not cohort.center or services.small_cell_min_for(cohort, request.user) != 0:
        raise PermissionDenied("Only the cohort's own center sees its small cells.")
    body = _figures_body(request, f"snapshot-figures-own:{pk}", lambda: snapshot.figures)
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
def refresh(request):
    if not request.user.has_perm("analytics.add_refreshrun"):  # registry staff only read
        raise PermissionDenied("Only clinicians and administrators start a dashboard refresh.")
    form = _cohort_form(request)
    if not form.is_valid():
        return redirect(reverse("analytics:dashboard"))
    options = form.options()
    run = services.refresh_request(options=options, user=request.user)
    query = urlencode({**options, "run": run.pk})
    return redirect(f"{reverse('analytics:dashboard')}?{query}")


@require_http_methods(["GET"])
def run_status(request, pk: int):
    services.refresh_runs_sweep()  # a run whose worker died is reported failed, not running
    run = get_object_or_404(RefreshRun, pk=pk)
    return JsonResponse(
        {
            "status": run.status,
            "status_label": str(STATUS_LABELS.get(run.status, run.status)),
            "step": gettext(run.step) if run.step else "",
            "progress": run.progress,
            "error": gettext(run.error) if run.error == services.NOT_PICKED_UP else run.error,
            "snapshot": run.snapshot_id,
        }
    )


@require_http_methods(["GET"])
@replica_view
def export_csv(request):
    """The analysis table: a snapshot's own (?snapshot=ID, the rows behind its numbers), or
    built now from the current data for the cohort the filters name.

    Row-level data leave the hospital in this file: a hematologist gets only their own
    center's rows (another center asked for by name is refused); registry staff get every
    center's pseudonymous rows."""
    own_center = center_code_restricted_to(request.user)  # None: every center
    if own_center == "":
        raise PermissionDenied("Your account is not attached to a center.")
    if request.GET.get("snapshot"):
        wanted = request.GET["snapshot"]
        if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 18):
            return HttpResponseBadRequest(
                "Cannot export: snapshot must be the number of a dashboard snapshot.",
                content_type="text/plain",
            )
        snapshot = get_object_or_404(DashboardSnapshot, pk=int(wanted))
        # The stored table as the reader gives it back (its protecting quotes removed:
        # csv_response writes them again), cut to the reader's own center if they have one.
        table = read_csv(snapshot.table_csv, restore=True)
        header, rows = rows_of_center(table, own_center or None)
        stamp = snapshot.computed_at
    else:
        data = request.GET.copy()
        if own_center and not data.get("center"):
            data["center"] = own_center  # their own rows, any dates: an exact own view
        form = _cohort_form(request, data)
        if not form.is_valid():  # never quietly export every patient instead
            return HttpResponseBadRequest(
                "Cannot export: " + form.errors.as_text(), content_type="text/plain"
            )
        options = form.options()
        if own_center and options.get("center", own_center) != own_center:
            raise PermissionDenied("You may export only your own center's patients.")
        if own_center:
            options["center"] = own_center
        cohort = services.cohort_from_options(options)
        (header, rows), stamp = analysis_table(analysis_frame(cohort)), timezone.now()
    name = f"carttrack-analysis-{timezone.localtime(stamp):%Y%m%d-%H%M}.csv"
    return csv_response(header, rows, filename=name)


@require_http_methods(["GET"])
def data_dictionary(request):
    if request.GET.get("format") == "csv":
        header, rows = data_dictionary_table()
        return csv_response(header, rows, filename="carttrack-data-dictionary.csv")
    if request.GET.get("format") == "md":
        return HttpResponse(data_dictionary_markdown(), content_type="text/markdown; charset=utf-8")
    # The page in the reader's language; its CSV and Markdown stay in English, like the
    # analysis table's column names they describe (a file is the same for every reader).
    context = {"columns": data_dictionary_shown(), "disclosure_note": gettext(DISCLOSURE_NOTE)}
    return render(request, "analytics/data_dictionary.html", context)
