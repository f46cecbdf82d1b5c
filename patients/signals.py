"""What patients announces to the floors above it (it never names them).

`records_changed` is sent inside the transaction that changed patients' clinical records
(after the rows are saved, while the patients' row locks are held), with the changed patients'
primary keys as `patient_ids`. A receiver runs in that transaction: whatever it derives (the
alerts, in `monitoring.apps`) is committed with the data or not at all, and an exception it
raises rolls the change back (`send`, not `send_robust`).

Every writer sends it: the form services (`patients.services`) and the one import path
(`imports.services.records_import`). An import evaluates the patients' alerts itself, once and
in bulk, with the sender's choices (history, notifications), and says so with
`alerts_evaluated=True`: monitoring's receiver then leaves the alerts alone, every other
receiver (the stored analysis rows, in `analytics.apps`) derives what it keeps.

The receivers of one announcement share what they read (`carttrack.shared_reads`: the
patients' timelines, their centers' settings), read once after the writes for all of them.
"""

from django.dispatch import Signal

from carttrack.shared_reads import reads_shared

records_changed = Signal()  # keywords: patient_ids (a list of Patient pks), alerts_evaluated


def records_changed_send(
    *, sender: object, patient_ids: list[int], alerts_evaluated: bool = False
) -> None:
    with reads_shared(join=True):
        records_changed.send(
            sender=sender, patient_ids=list(patient_ids), alerts_evaluated=alerts_evaluated
        )
