"""Reading side of the rule-performance page: who may see which centers, and the numbers.

The statistics are pure (``analytics.performance``, ``analytics.calibration``); this module reads
the three tables for the centers a user may see and caches the result until the clinical data,
the rule parameters or the alerts change.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max

from analytics.calibration import calibration_grid
from analytics.course_tables import alerts_frame, bcell_course_frame
from analytics.dataset import CohortFilter, analysis_frame
from analytics.performance import rule_performance_report
from analytics.rule_figures import calibration_figures
from patients.models import Center

CACHE_SECONDS = 600


def rule_review_centers(user) -> list[str] | None:
    """Center codes whose rule performance the user may see; None: not this page at all.

    Registry staff (every center) and superusers see all centers and the pooled view; a center's
    rule administrator (may view rule parameter sets) sees that center only.
    """
    if user.is_superuser or user.has_perm("patients.view_all_centers"):
        return list(Center.objects.order_by("code").values_list("code", flat=True))
    if user.has_perm("monitoring.view_ruleparameterset"):
        profile = getattr(user, "profile", None)
        if profile is not None and profile.center_id is not None:
            return [profile.center.code]
    return None


def sees_pooled(user) -> bool:
    return user.is_superuser or user.has_perm("patients.view_all_centers")


def _fingerprint() -> str:
    from analytics.services import data_version
    from monitoring.models import Alert, AlertEvent

    alerts = Alert.objects.aggregate(n=Count("pk"), last=Max("updated_at"))
    events = AlertEvent.objects.aggregate(n=Count("pk"), last=Max("pk"))
    return f"{data_version()}:{alerts['n']}:{alerts['last']}:{events['n']}:{events['last']}"


def rule_review(*, center: str = "", landmark_day: int = 45) -> dict[str, Any]:
    """Rule performance and calibration for one center ("" = the whole registry)."""
    state = f"{_fingerprint()}:{center}:{landmark_day}"
    key = "rule-review:" + hashlib.sha256(state.encode()).hexdigest()[:32]
    found = cache.get(key)
    if found is not None:
        return found
    cohort = CohortFilter(center=center)
    frame, alerts, bcells = analysis_frame(cohort), alerts_frame(cohort), bcell_course_frame(cohort)
    grid = calibration_grid(frame, bcells)
    result = {
        "performance": rule_performance_report(frame, alerts, landmark_day=landmark_day),
        "calibration": grid,
        "figures": calibration_figures(grid),
        "n_patients": len(frame),
    }
    cache.set(key, result, CACHE_SECONDS)
    return result
