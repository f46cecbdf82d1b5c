from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self):
        from patients.signals import records_changed

        records_changed.connect(
            _alerts_sync_on_records_changed, dispatch_uid="monitoring.alerts_sync"
        )


def _alerts_sync_on_records_changed(sender, *, patient_ids, **kwargs):
    """Patients announced changed records (inside their transaction): bring the alerts in line."""
    from monitoring.services import alerts_sync
    from patients.models import Patient

    for patient_id in patient_ids:
        alerts_sync(patient=Patient(pk=patient_id))  # alerts_sync reads the patient afresh
