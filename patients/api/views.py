"""A small JSON API: results arriving in bulk from a laboratory system, and the alert list.

A batch is all or nothing: if any value of any sample is wrong, nothing is saved and the answer
names each problem by its place in the batch (samples[2].values[0].unit).
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from monitoring.selectors import alert_inbox
from patients.api.serializers import AlertSerializer, LabBatchSerializer
from patients.selectors import patients_visible_to
from patients.services import LabValue, lab_results_record


def _sample_errors(index: int, sample: dict, error: ValidationError) -> dict[str, list[str]]:
    analytes = [value["analyte"] for value in sample["values"]]
    out: dict[str, list[str]] = {}
    for key, messages in error.message_dict.items():
        analyte, _, field = key.partition("-")
        if field and analyte in analytes:
            path = f"samples[{index}].values[{analytes.index(analyte)}].{field}"
        elif key == "__all__":
            path = f"samples[{index}]"
        else:
            path = f"samples[{index}].{key}"
        out.setdefault(path, []).extend(messages)
    return out


@extend_schema(request=LabBatchSerializer, responses={201: dict, 400: dict})
@api_view(["POST"])
def lab_batch(request):
    """Record many samples, for any patients the user may enter results for, in one go."""
    if not request.user.has_perm("patients.add_labresult"):
        raise PermissionDenied("You may not enter lab results.")
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
    if errors:
        return Response({"errors": errors, "saved": 0}, status=status.HTTP_400_BAD_REQUEST)
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
                        collected_at=sample["collected_at"],
                        values=[
                            LabValue(
                                analyte=v["analyte"],
                                value=v.get("value"),
                                unit=v["unit"],
                                qualifier=v.get("qualifier", ""),
                                method=v.get("method", ""),
                            )
                            for v in sample["values"]
                        ],
                        entered_by=request.user,
                    )
                except ValidationError as error:
                    errors.update(_sample_errors(index, sample, error))
                    continue
                saved.extend(results)
            if errors:
                raise ValidationError("batch refused")  # roll back every sample
    except ValidationError:
        return Response(
            {"errors": dict(sorted(errors.items())), "saved": 0}, status=status.HTTP_400_BAD_REQUEST
        )
    return Response(
        {"saved": len(saved), "ids": [r.pk for r in saved]}, status=status.HTTP_201_CREATED
    )


@extend_schema(responses=AlertSerializer(many=True))
@api_view(["GET"])
def alert_list(request):
    """Open and acknowledged alerts on the patients the user sees, most severe first."""
    alerts = alert_inbox(
        request.user,
        severity=request.query_params.get("severity", ""),
        status=request.query_params.get("status", ""),
    )[:500]
    return Response(AlertSerializer(alerts, many=True).data)
