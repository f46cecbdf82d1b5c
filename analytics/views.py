"""The survival dashboard: the latest snapshot of a cohort, its refresh, and the CSV export."""

import json

from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from analytics import services
from analytics.dataset import analysis_csv, analysis_frame
from analytics.dataset_schema import data_dictionary_csv, data_dictionary_markdown
from analytics.forms import CohortForm
from analytics.models import DashboardSnapshot, RefreshRun
from analytics.report import COMPARISONS

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


def _cohort_form(request) -> CohortForm:
    # Cohort statistics are aggregates over pseudonymous rows: every signed-in user may see
    # them for any center, as a registry's members compare their outcomes.
    return CohortForm(request.GET if request.method == "GET" else request.POST)


@require_http_methods(["GET"])
def dashboard(request):
    form = _cohort_form(request)
    options = form.options() if form.is_valid() else {}
    cohort = services.cohort_from_options(options)
    snapshot = services.latest_snapshot(cohort)
    run = services.pending_run(cohort)
    context = {
        "form": form,
        "snapshot": snapshot,
        "cohort": cohort,
        "run": run,
        "stale": snapshot is not None and snapshot.data_version != services.data_version(),
        "query": request.GET.urlencode(),
        "endpoint_rows": [("rfs", "relapse-free survival"), ("os", "overall survival")],
    }
    if snapshot is not None:
        # The figures' data (hundreds of KB) comes from `figures_json`, cached by the browser.
        context["figures"] = [name for name in FIGURE_ORDER if name in snapshot.figures]
        context["r"] = snapshot.report
        # jsonb does not keep key order: list the comparisons in the report's own order.
        context["comparisons"] = [
            snapshot.report["logrank"][key]
            for key in COMPARISONS
            if key in snapshot.report.get("logrank", {})
        ]
    return render(request, "analytics/dashboard.html", context)


@require_http_methods(["GET"])
def figures_json(request, pk: int):
    """A snapshot's figures as JSON. Snapshots never change: serialised once (cache), and the
    browser may keep the response for a year (its URL names the snapshot)."""
    body = cache.get_or_set(
        f"snapshot-figures:{pk}",
        lambda: json.dumps(
            {
                name: figure
                for name, figure in get_object_or_404(DashboardSnapshot, pk=pk).figures.items()
            },
            cls=DjangoJSONEncoder,
        ),
        timeout=24 * 3600,
    )
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@require_POST
def refresh(request):
    form = _cohort_form(request)
    if not form.is_valid():
        return redirect(reverse("analytics:dashboard"))
    options = form.options()
    run = services.refresh_request(options=options, user=request.user)
    query = urlencode({**options, "run": run.pk})
    return redirect(f"{reverse('analytics:dashboard')}?{query}")


@require_http_methods(["GET"])
def run_status(request, pk: int):
    run = get_object_or_404(RefreshRun, pk=pk)
    return JsonResponse(
        {
            "status": run.status,
            "step": run.step,
            "progress": run.progress,
            "error": run.error,
            "snapshot": run.snapshot_id,
        }
    )


@require_http_methods(["GET"])
def export_csv(request):
    """The analysis table: a snapshot's own (?snapshot=ID, the rows behind its numbers), or
    built now from the current data for the cohort the filters name."""
    if request.GET.get("snapshot"):
        wanted = request.GET["snapshot"]
        if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 18):
            return HttpResponseBadRequest(
                "Cannot export: snapshot must be the number of a dashboard snapshot.",
                content_type="text/plain",
            )
        snapshot = get_object_or_404(DashboardSnapshot, pk=int(request.GET["snapshot"]))
        body, stamp = snapshot.table_csv, snapshot.computed_at
    else:
        form = _cohort_form(request)
        if not form.is_valid():  # never quietly export every patient instead
            return HttpResponseBadRequest(
                "Cannot export: " + form.errors.as_text(), content_type="text/plain"
            )
        cohort = services.cohort_from_options(form.options())
        body, stamp = analysis_csv(analysis_frame(cohort)), timezone.now()
    response = HttpResponse(body, content_type="text/csv")
    name = f"carttrack-analysis-{timezone.localtime(stamp):%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_http_methods(["GET"])
def data_dictionary(request):
    if request.GET.get("format") == "csv":
        response = HttpResponse(data_dictionary_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="carttrack-data-dictionary.csv"'
        return response
    return HttpResponse(data_dictionary_markdown(), content_type="text/markdown; charset=utf-8")
