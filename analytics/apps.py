from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = _("Survival analytics")

    def ready(self):
        from django.db.models.signals import post_save

        from monitoring.models import RuleParameterSet
        from patients.models import Center
        from patients.signals import records_changed

        records_changed.connect(
            _derived_rows_on_records_changed, dispatch_uid="analytics.derived_rows"
        )
        post_save.connect(
            _derived_rows_on_inputs,
            sender=RuleParameterSet,
            dispatch_uid="analytics.derived_rows_rule_params",
        )
        post_save.connect(
            _derived_rows_on_inputs, sender=Center, dispatch_uid="analytics.derived_rows_center"
        )


def _derived_rows_on_records_changed(sender, *, patient_ids, **kwargs):
    """Patients announced changed records (inside their transaction, under their locks): their
    stored analysis rows are rebuilt in the same transaction (`analytics.derived`)."""
    from analytics.derived import derived_rows_store

    derived_rows_store(patient_ids=patient_ids)


def _derived_rows_on_inputs(sender, *, instance, created, raw=False, **kwargs):
    """A center was changed (its code or time zone may have moved), or a version of a center's
    rule parameters was published (None: the registry's): the stored rows of its patients whose
    inputs changed are rebuilt in the same transaction (`analytics.derived.center_rows_store`)."""
    if raw:
        return
    from analytics.derived import center_rows_store
    from patients.models import Center

    if isinstance(instance, Center):
        if not created:
            center_rows_store(center_id=instance.pk)
    elif created:
        center_rows_store(center_id=instance.center_id)
