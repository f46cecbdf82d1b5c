from django.apps import AppConfig
from django.core import checks


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self):
        from patients.signals import records_changed

        records_changed.connect(
            _alerts_sync_on_records_changed, dispatch_uid="monitoring.alerts_sync"
        )
        checks.register(centers_have_recipients, checks.Tags.database)


def _alerts_sync_on_records_changed(sender, *, patient_ids, alerts_evaluated=False, **kwargs):
    """Patients announced changed records (inside their transaction): bring the alerts in line,
    unless the writer evaluated them itself (an import, `imports.services.records_import`)."""
    if alerts_evaluated:
        return
    from monitoring.services import alerts_sync
    from patients.models import Patient

    for patient_id in patient_ids:
        alerts_sync(patient=Patient(pk=patient_id))  # alerts_sync reads the patient afresh


def centers_have_recipients(app_configs=None, databases=None, **kwargs):
    """`manage.py check --database default`: a center whose high alerts would reach nobody."""
    if not databases:
        return []
    from django.db import DatabaseError

    from monitoring.recipients import centers_without_recipients

    try:
        centers = centers_without_recipients()
    except DatabaseError:  # not migrated yet
        return []
    return [
        checks.Warning(
            f"Center {center.code}: nobody to notify (no active clinician with an e-mail "
            "address): high alerts of patients without a responsible clinician, and every "
            "escalation, reach nobody.",
            hint="Add a clinician of this center with an e-mail address in the admin.",
            id="monitoring.W001",
        )
        for center in centers
    ]
