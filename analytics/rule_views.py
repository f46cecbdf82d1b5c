"""The rule-performance page (/dashboard/rules/) and the two companion exports behind it."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from analytics.calibration import WINDOWS
from analytics.course_tables import alerts_frame, bcell_course_frame, table_rows
from analytics.dataset import CohortFilter
from analytics.figure_texts import localized
from analytics.performance import OUTCOMES
from analytics.rule_figures import CALIBRATION_FIGURES
from analytics.rule_review import rule_review, rule_review_centers, sees_pooled
from carttrack.csv_safety import csv_response
from carttrack.replica import replica_view
from monitoring.models import OUTCOME_CHOICES, RULE_SHORT_LABELS

REASON_LABELS = {
    "infusion_deleted": _("infusion deleted"),
    "evidence_deleted": _("evidence deleted"),
    "condition_no_longer_holds": _("condition no longer holds"),
}


class RuleReviewForm(forms.Form):
    center = forms.ChoiceField(required=False, label=_("Center"))
    landmark = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=45,
        initial=45,
        choices=[(w, str(w)) for w in WINDOWS],  # labelled in __init__, per request
        label=_("Landmark"),
    )

    def __init__(self, *args, centers: list[str], pooled: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["landmark"].choices = [
            (w, gettext("day %(day)s") % {"day": w}) for w in WINDOWS
        ]
        first = [("", _("All centers"))] if pooled else []
        self.fields["center"].choices = first + [(c, c) for c in centers]


def _allowed(request) -> tuple[list[str], bool]:
    centers = rule_review_centers(request.user)
    if centers is None:
        raise PermissionDenied
    return centers, sees_pooled(request.user)


def _selected_center(request, centers: list[str], pooled: bool) -> tuple[RuleReviewForm, str, int]:
    form = RuleReviewForm(request.GET or None, centers=centers, pooled=pooled)
    center, landmark = ("" if pooled else centers[0]), 45
    if form.is_bound and form.is_valid():
        center = form.cleaned_data["center"] or center
        landmark = form.cleaned_data["landmark"] or 45
    return form, center, landmark


@require_http_methods(["GET"])
@replica_view
def rule_performance(request):
    centers, pooled = _allowed(request)
    form, center, landmark = _selected_center(request, centers, pooled)
    review = rule_review(center=center, landmark_day=landmark)
    performance = review["performance"]
    labels = dict(OUTCOME_CHOICES) | REASON_LABELS
    for row in performance["alerts"]:
        for key in ("closed_by_outcome", "withdrawn_by_reason"):
            row[f"{key}_text"] = "; ".join(
                f"{labels[code].lower()} {n}" for code, n in row[key].items() if n
            )
    context = {
        "form": form,
        "center": center,
        "landmark": landmark,
        "show_pooled": pooled and not center,
        "alerts": performance["alerts"],
        "pooled": performance["pooled"],
        "by_center": sorted(performance["early_regeneration_by_center"].items()),
        # Stored in English with the cached review: shown in the reader's language.
        "definitions": {key: gettext(text) for key, text in performance["definitions"].items()},
        "calibration": {
            **review["calibration"],
            "caveat": gettext(review["calibration"].get("caveat") or "") or None,
        },
        "figures": [(name, localized(review["figures"][name])) for name in CALIBRATION_FIGURES],
        "n_patients": review["n_patients"],
        "rule_labels": RULE_SHORT_LABELS,
        "outcomes": [(code, dict(OUTCOME_CHOICES)[code]) for code in OUTCOMES],
    }
    return render(request, "analytics/rules.html", context)


def _csv_response(frame, stem: str) -> HttpResponse:
    # Through csv_safety like every CSV: a cell a spreadsheet would run as a formula (a study
    # ID that bypassed validation, say) is written with a quote in front; never cached.
    header, rows = table_rows(frame)
    name = f"carttrack-{stem}-{timezone.localtime():%Y%m%d-%H%M}.csv"
    return csv_response(header, rows, filename=name)


@require_http_methods(["GET"])
@replica_view
def export_alerts(request):
    """One row per alert (pseudonymous): the ``--alerts`` file of ``survival_report``."""
    centers, pooled = _allowed(request)
    _, center, _ = _selected_center(request, centers, pooled)
    return _csv_response(alerts_frame(CohortFilter(center=center)), "alerts")


@require_http_methods(["GET"])
@replica_view
def export_bcells(request):
    """The B-cell course (days 1-90): the ``--bcells`` file of ``survival_report``."""
    centers, pooled = _allowed(request)
    _, center, _ = _selected_center(request, centers, pooled)
    return _csv_response(bcell_course_frame(CohortFilter(center=center)), "bcells")
