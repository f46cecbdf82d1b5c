from django import template
from django.utils.translation import gettext, gettext_noop

from monitoring.models import ACTIVE_STATUSES

register = template.Library()


@register.inclusion_tag("monitoring/_patient_alerts.html", takes_context=True)
def patient_alerts(context, patient):
    alerts = list(patient.alerts.select_related("acknowledged_by").order_by("-raised_at"))
    active = sorted(
        [a for a in alerts if a.status in ACTIVE_STATUSES],
        key=lambda a: ({"high": 0, "warning": 1, "reminder": 2}.get(a.severity, 3), a.raised_at),
    )
    from monitoring.worklist import with_course_status

    return {
        "active": with_course_status(active),
        "past": [a for a in alerts if a.status not in ACTIVE_STATUSES],
        "patient": patient,
        "request": context.get("request"),
    }


@register.filter
def analyte_label(code: str) -> str:
    from patients.units import ANALYTES

    analyte = ANALYTES.get(code)
    return gettext(analyte.label) if analyte else code


@register.filter
def evidence_value(evidence: dict) -> str:
    from patients.units import QUALIFIER_CHOICES, UNIT_LABELS

    if evidence.get("qualifier"):
        label = dict(QUALIFIER_CHOICES).get(evidence["qualifier"])
        return gettext(label) if label else evidence["qualifier"]
    value = evidence.get("value")
    if value is None:
        return "—"
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    from patients.templatetags.clinical import localize_decimal

    unit = UNIT_LABELS.get(evidence.get("unit"), evidence.get("unit", ""))
    return f"{localize_decimal(value)} {unit}"


ROLE_LABELS = {
    "aplasia": gettext_noop("B-cell aplasia documented"),
    "regeneration": gettext_noop("First detectable count"),
    "confirmation": gettext_noop("Confirming count"),
    "count": gettext_noop("Count"),
    "last_count": gettext_noop("Last count"),
    "mrd_positive": gettext_noop("MRD positive"),
    "car_detectable": gettext_noop("CAR copies detectable"),
    "car_loss": gettext_noop("CAR copies undetectable"),
}


@register.filter
def role_label(role: str) -> str:
    label = ROLE_LABELS.get(role)
    return gettext(label) if label else role.replace("_", " ")


@register.inclusion_tag("monitoring/_course_chart.html")
def course_chart(patient, key: str = "patient", table_anchor: str = "", alert=None):
    """The patient's course chart (figure JSON for static/js/course_chart.js), its view buttons
    and its summary. With ``alert``, the marks, window and threshold are those the alert was
    evaluated with (its stored parameters), so the chart cannot disagree with the alert."""
    from monitoring.course_chart import course_chart_json
    from monitoring.course_data import course_for, course_summary
    from monitoring.params import RuleParams

    params = None
    if alert is not None and alert.params:
        try:
            params = RuleParams.from_dict(alert.params)
        except (TypeError, ValueError):
            params = None  # an old alert's parameters: the center's in force instead
    course = course_for(patient, params=params)
    figure = course_chart_json(course)
    return {
        "figure": figure,
        "figure_id": f"course-figure-{key}",
        "key": key,
        "summary": course_summary(course),
        "table_anchor": table_anchor,
        "views": figure["layout"]["meta"]["views"] if figure else [],
        "window_days": course.window_days,
        "threshold": course.threshold,
    }


@register.simple_tag
def alert_key_facts(alert) -> dict:
    """What the alert page opens with: the result that raised the alert (the one collected on
    the alert's day, a PB B-cell count first) and the count of the same analyte before it.

    Either may be None: a reminder has no triggering result, a first count has no previous one.
    """
    from patients.units import PB_BCELL_ABS

    evidence = [e for e in (alert.evidence or []) if isinstance(e, dict) and "day" in e]
    if not evidence:
        return {"trigger": None, "previous": None}

    def rank(e: dict) -> tuple:
        return (e["day"] == alert.day, e.get("analyte") == PB_BCELL_ABS, e["day"])

    trigger = max(evidence, key=rank)
    earlier = [
        e
        for e in evidence
        if e.get("analyte") == trigger.get("analyte") and e["day"] < trigger["day"]
    ]
    previous = max(earlier, key=lambda e: e["day"]) if earlier else None
    return {"trigger": trigger, "previous": previous}
