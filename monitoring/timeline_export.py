"""A stored patient's course as a timeline JSON document (docs/timeline-format.md).

The inverse of `timeline_json.timeline_from_json`: `check_timeline` on the document evaluates
exactly what the rules evaluate on the stored patient. Ids are the database's, so findings name
the same results and infusions as the stored alerts; values are as entered (value and unit, or
the qualifier), exact decimals, and collection times carry the center's UTC offset.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from patients.models import Patient


def _decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")  # 15.000000 -> "15", never a float or exponent


def patient_timeline_document(patient: Patient) -> dict[str, Any]:
    tz = patient.center.tzinfo
    results = []
    for r in patient.lab_results.order_by("collected_at", "pk"):
        entry: dict[str, Any] = {
            "id": r.pk,
            "analyte": r.analyte,
            "specimen": r.specimen,
            "collected": r.collected_at.astimezone(tz).isoformat(),
        }
        if r.qualifier:
            entry["qualifier"] = r.qualifier
        else:
            entry["value"], entry["unit"] = _decimal(r.value), r.unit
        results.append(entry)
    document: dict[str, Any] = {"patient": patient.study_id}
    if patient.date_of_birth:
        document["birth_date"] = patient.date_of_birth.isoformat()
    document["time_zone"] = patient.center.time_zone
    document["infusions"] = [
        {"id": i.pk, "date": i.infusion_date.isoformat(), "number": i.infusion_number}
        for i in patient.infusions.order_by("infusion_date")
    ]
    document["results"] = results
    document["responses"] = [
        {
            "id": r.pk,
            "date": r.assessed_on.isoformat(),
            "response": r.response,
            "mrd_status": r.mrd_status,
        }
        for r in patient.responses.order_by("assessed_on", "pk")
    ]
    document["events"] = [
        {"id": e.pk, "kind": e.kind, "date": e.event_date.isoformat()}
        for e in patient.events.order_by("event_date", "pk")
    ]
    return document
