"""Alert services: keep alerts consistent with the data."""

from patients.models import Patient


def alerts_sync(*, patient: Patient) -> None:
    """Re-evaluate one patient's rules (filled in by the monitoring issue)."""
