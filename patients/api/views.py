"""A small JSON API: the alert list. (Lab results arrive through `imports.api`.)"""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from monitoring.selectors import alert_inbox
from patients.api.serializers import AlertSerializer


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
