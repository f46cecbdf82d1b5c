"""A small JSON API: the alert list. (Lab results arrive through `imports.api`.)

Every error answer is JSON of one shape (patients.api.errors).
"""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from monitoring.selectors import alert_inbox
from patients.api.errors import ERROR_RESPONSES
from patients.api.serializers import AlertQuerySerializer, AlertSerializer


@extend_schema(
    parameters=[AlertQuerySerializer],
    responses={200: AlertSerializer(many=True), **ERROR_RESPONSES},
)
@api_view(["GET"])
def alert_list(request):
    """Open and acknowledged alerts on the patients the user sees, most severe first
    (`?status=historical`: the imported history)."""
    query = AlertQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    alerts = alert_inbox(
        request.user,
        severity=query.validated_data["severity"],
        status=query.validated_data["status"],
    )[:500]
    return Response(AlertSerializer(alerts, many=True).data)
