"""What patients announces to the floors above it (it never names them).

`records_changed` is sent inside the transaction that changed patients' clinical records
(after the rows are saved, while the patients' row locks are held), with the changed patients'
primary keys as `patient_ids`. A receiver runs in that transaction: whatever it derives (the
alerts, in `monitoring.apps`) is committed with the data or not at all, and an exception it
raises rolls the change back (`send`, not `send_robust`).
"""

from django.dispatch import Signal

records_changed = Signal()  # keyword: patient_ids (a list of Patient pks)


def records_changed_send(*, sender: object, patient_ids: list[int]) -> None:
    records_changed.send(sender=sender, patient_ids=list(patient_ids))
