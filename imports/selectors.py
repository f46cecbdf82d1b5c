"""Reads of the import bookkeeping that other parts (health checks, pages) ask for."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from imports.models import HL7Listener


def hl7_listener_alive(*, now: datetime | None = None) -> bool:
    """Whether an MLLP listener stamped its heartbeat within twice HL7_HEARTBEAT_SECONDS (one
    missed stamp is tolerated). One indexed read; no connection to the port."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=2 * settings.HL7_HEARTBEAT_SECONDS)
    return HL7Listener.objects.filter(heartbeat_at__gte=limit).exists()
