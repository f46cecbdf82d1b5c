"""A small JSON API: results arriving in bulk from a laboratory system, and the alert list.

A batch is all or nothing: if any value of any sample is wrong, nothing is saved and the answer
names each problem by its place in the batch (samples[2].values[0].unit). Every error answer is
JSON of one shape (patients.api.errors). A collection time without a UTC offset is the patient's
center's local time; the answer echoes each stored sample's clinical day so a caller can check.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from monitoring.selectors import alert_inbox
from patients import validation
from patients.api.errors import ERROR_RESPONSES, error_body
from patients.api.serializers import (
    AlertQuerySerializer,
    AlertSerializer,
    LabBatchResultSerializer,
    LabBatchSerializer,
)
from patients.days import LocalTimeError, at_local_time, clinical_day, local_date
from patients.selectors import patients_visible_to
from patients.services import LabValue, lab_results_record

CONFIRM_HINT = 'If the value is correct, send it again with "confirmed": true.'


def _sample_errors(index: int, sample: dict, error: ValidationError) -> dict[str, list[str]]:
    analytes = [value["analyte"] for value in sample["values"]]
    out: dict[str, list[str]] = {}
    for key, errors in error.error_dict.items():
        analyte, _, field = key.partition("-")
        if field and analyte in analytes:
            path = f"samples[{index}].values[{analytes.index(analyte)}].{field}"
        elif key == "__all__":
            path = f"samples[{index}]"
        else:
            path = f"samples[{index}].{key}"
        for item in errors:
            text = item.message % item.params if item.params else item.message
            if item.code == validation.UNCONFIRMED:
                text = text.removesuffix(" If it is correct, confirm it.") + " " + CONFIRM_HINT
            out.setdefault(path, []).append(text)
    return out


def _stored_sample(patient, collected_at, results, infusion_dates) -> dict:
    tz = patient.center.tzinfo
    on = local_date(collected_at, tz)
    day = clinical_day(on, infusion_dates)
    return {
        "study_id": patient.study_id,
        "collected_at": collected_at.astimezone(tz).isoformat(),
        "time_zone": patient.center.time_zone,
        "collected_on": on.isoformat(),
        "infusion_number": day.infusion_number if day else None,
        "day": day.day if day else None,
        "ids": [r.pk for r in results],
    }


@extend_schema(
    request=LabBatchSerializer,
    responses={201: LabBatchResultSerializer, **ERROR_RESPONSES},
)
@api_view(["POST"])
def lab_batch(request):
    """Record many samples, for any patients the user may enter results for, in one go."""
    if not request.user.has_perm("patients.add_labresult"):
        raise PermissionDenied("You may not enter lab results.")
    # Django's size limit (DATA_UPLOAD_MAX_MEMORY_SIZE) applies when the body is read as a whole;
    # read it so, and an oversized batch is a 413 (patients.api.errors), not parsed at any size.
    request._request.body  # noqa: B018
    batch = LabBatchSerializer(data=request.data)
    batch.is_valid(raise_exception=True)
    samples = batch.validated_data["samples"]
    visible = {
        p.study_id: p
        for p in patients_visible_to(request.user).filter(
            study_id__in={s["study_id"] for s in samples}
        )
    }
    errors: dict[str, list[str]] = {}
    for index, sample in enumerate(samples):
        if sample["study_id"] not in visible:
            errors[f"samples[{index}].study_id"] = [
                f"No patient {sample['study_id']} that you may enter results for."
            ]
    moments = {}
    for index, sample in enumerate(samples):
        patient = visible.get(sample["study_id"])
        if patient is None:
            continue
        try:
            moments[index] = at_local_time(sample["collected_at"], patient.center.tzinfo)
        except LocalTimeError as error:
            errors[f"samples[{index}].collected_at"] = [str(error)]
    if errors:
        return _refused(errors)
    # One writer per patient at a time: lock patients in a fixed order so batches never deadlock.
    order = sorted(range(len(samples)), key=lambda i: (visible[samples[i]["study_id"]].pk, i))
    saved = []
    try:
        with transaction.atomic():
            for index in order:
                sample = samples[index]
                try:
                    results = lab_results_record(
                        patient=visible[sample["study_id"]],
                        collected_at=moments[index],
                        values=[
                            LabValue(
                                analyte=v["analyte"],
                                value=v.get("value"),
                                unit=v["unit"],
                                qualifier=v.get("qualifier", ""),
                                method=v.get("method", ""),
                                confirmed=v.get("confirmed", False),
                            )
                            for v in sample["values"]
                        ],
                        entered_by=request.user,
                    )
                except ValidationError as error:
                    errors.update(_sample_errors(index, sample, error))
                    continue
                saved.append((index, results))
            if errors:
                raise ValidationError("batch refused")  # roll back every sample
    except ValidationError:
        return _refused(errors)
    infusions: dict[int, list] = {}
    stored = []
    for index, results in sorted(saved, key=lambda item: item[0]):
        patient = visible[samples[index]["study_id"]]
        if patient.pk not in infusions:
            infusions[patient.pk] = list(
                patient.infusions.order_by("infusion_date").values_list("infusion_date", flat=True)
            )
        stored.append(_stored_sample(patient, moments[index], results, infusions[patient.pk]))
    ids = [pk for sample in stored for pk in sample["ids"]]
    return Response(
        {"saved": len(ids), "ids": ids, "samples": stored}, status=status.HTTP_201_CREATED
    )


def _refused(errors: dict[str, list[str]]) -> Response:
    body = error_body(
        400, "Nothing was saved: see errors for each problem.", dict(sorted(errors.items()))
    )
    return Response({**body, "saved": 0}, status=status.HTTP_400_BAD_REQUEST)


@extend_schema(
    parameters=[AlertQuerySerializer],
    responses={200: AlertSerializer(many=True), **ERROR_RESPONSES},
)
@api_view(["GET"])
def alert_list(request):
    """Open and acknowledged alerts on the patients the user sees, most severe first."""
    query = AlertQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    alerts = alert_inbox(
        request.user,
        severity=query.validated_data["severity"],
        status=query.validated_data["status"],
    )[:500]
    return Response(AlertSerializer(alerts, many=True).data)
