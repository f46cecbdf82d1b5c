"""Held results are retried when what they waited for may have arrived: a patient saved (a new
registration, an MRN added), a code mapping or a unit alias saved. The retry runs after the
commit (what it looks for must be visible) and only for that center."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from imports.models import HELD, CodeMapping, HeldResult, UnitAlias
from patients.models import Patient

logger = logging.getLogger(__name__)


def _retry_after_commit(center_id: int) -> None:
    def retry() -> None:
        from imports.held import held_results_retry
        from patients.models import Center

        if not HeldResult.objects.filter(center_id=center_id, state=HELD).exists():
            return
        try:
            held_results_retry(center=Center.objects.get(pk=center_id))
        except Exception:  # the save that triggered it stands; the queue's Retry is there
            logger.exception("Retrying the held results of center %s failed", center_id)

    transaction.on_commit(retry)


@receiver(post_save, sender=Patient, dispatch_uid="held_retry_patient")
def _patient_saved(sender, instance: Patient, **kwargs) -> None:
    _retry_after_commit(instance.center_id)


@receiver(post_save, sender=CodeMapping, dispatch_uid="held_retry_code")
@receiver(post_save, sender=UnitAlias, dispatch_uid="held_retry_unit")
def _mapping_saved(sender, instance, **kwargs) -> None:
    _retry_after_commit(instance.center_id)
