"""The notification outbox: sending the rows recorded with their alerts, at most once each.

A notification row is written in the same transaction as its alert; a Celery task sends it after
commit, and a periodic task sends whatever is still pending, so an alert raised while Redis or the
worker was down is still notified once they are back. A sender claims one row with a conditional
UPDATE and goes on only if exactly one row changed, so two senders never send the same message.
Each attempt is stored before it is made, and its error after.

Who is told (the rows) is decided in `monitoring.recipients`; how a row is delivered (e-mail, a
center's webhook) in `monitoring.channels`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from carttrack.queue import task_send
from monitoring.channels import CHANNELS, PermanentError
from monitoring.models import (
    FAILED,
    OPEN,
    PENDING,
    SENDING,
    SENT,
    WITHDRAWN,
    Notification,
)

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
SEND_TASK = "monitoring.tasks.send_pending_notifications"
# A row left "sending" this long by a crashed sender is claimed again.
STALE_CLAIM = timedelta(minutes=10)


def send_after_commit() -> None:
    """Ask a worker to send the outbox once the transaction commits; never fail the save."""

    def enqueue():
        # By name: the tasks (the roof) import this module, never the other way round.
        try:
            task_send(SEND_TASK, retry=False)
        except Exception:  # Redis down: the periodic task sends them when it is back
            logger.warning(
                "Could not enqueue notifications; the periodic sender will send them", exc_info=True
            )

    transaction.on_commit(enqueue)


def _claimable(now) -> Q:
    """Pending and past its backoff, or left "sending" by a crashed sender."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return Q(status=PENDING) & due | Q(status=SENDING, claimed_at__lt=now - STALE_CLAIM)


def _claim(notification_id: int) -> bool:
    now = timezone.now()
    claimable = _claimable(now)
    claimed = Notification.objects.filter(claimable, pk=notification_id).update(
        status=SENDING, claimed_at=now
    )
    return claimed == 1


def notification_send(notification_id: int) -> str | None:
    """Send one notification if this caller wins the claim. Returns its new status."""
    if not _claim(notification_id):
        return None
    notification = Notification.objects.select_related("alert__patient", "recipient").get(
        pk=notification_id
    )
    if notification.alert.status == WITHDRAWN:
        # Withdrawn before it went out: the condition no longer holds, so nothing to say.
        notification.status, notification.last_error = FAILED, "not sent: alert withdrawn"
        notification.save(update_fields=["status", "last_error"])
        return notification.status
    if notification.escalation_step and notification.alert.status != OPEN:
        # Acknowledged (or closed) before the escalation went out: acknowledging stops it.
        notification.status = FAILED
        notification.last_error = f"not sent: alert {notification.alert.status}"
        notification.save(update_fields=["status", "last_error"])
        return notification.status
    notification.attempts += 1
    notification.save(update_fields=["attempts"])  # the attempt is stored before it is made
    try:
        CHANNELS[notification.channel].notify(notification)
    except PermanentError as error:
        notification.status, notification.last_error = FAILED, str(error)[:500]
    except Exception as error:  # transient: try again later, up to MAX_ATTEMPTS
        notification.last_error = str(error)[:500]
        notification.status = FAILED if notification.attempts >= MAX_ATTEMPTS else PENDING
        if notification.channel == "webhook":  # e-mail: the periodic sender's minute is enough
            backoff = settings.NOTIFICATION_BACKOFF_SECONDS * 2 ** (notification.attempts - 1)
            notification.next_attempt_at = timezone.now() + timedelta(seconds=backoff)
    else:
        notification.status, notification.sent_at, notification.last_error = (
            SENT,
            timezone.now(),
            "",
        )
    notification.save(update_fields=["status", "sent_at", "last_error", "next_attempt_at"])
    if notification.status == FAILED:
        # Loud: an alert nobody was told about. Shown on the alert page and in the admin's
        # "Undelivered" list, logged at ERROR for the operators, and retried (see below).
        logger.error(
            "Notification %s about alert %s (%s) to %s undeliverable after %s attempt(s): %s",
            notification.pk,
            notification.alert_id,
            notification.alert.get_severity_display(),
            notification.recipient.username if notification.recipient else "the webhook",
            notification.attempts,
            notification.last_error,
        )
    return notification.status


def undelivered(queryset=None):
    """Notifications that failed for good (not those dropped because the alert was withdrawn
    before sending: they made no attempt)."""
    queryset = Notification.objects.all() if queryset is None else queryset
    return queryset.filter(status=FAILED, attempts__gt=0).exclude(alert__status=WITHDRAWN)


def notifications_retry(*, ids=None, failed_before=None) -> int:
    """Put undeliverable notifications back in the outbox with a fresh set of attempts, once
    the cause is fixed (an address added, the mail server back): by an administrator (the
    admin's "Retry" action, ``ids``) or by beat for those failed before ``failed_before``.
    The claim still guarantees that each is sent at most once."""
    rows = undelivered()
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    if failed_before is not None:
        rows = rows.filter(claimed_at__lt=failed_before)
    count = rows.update(status=PENDING, attempts=0, claimed_at=None, next_attempt_at=None)
    if count:
        send_after_commit()
    return count


def notifications_retry_failed() -> int:
    """Beat's hourly retry of what failed for good at least NOTIFICATION_RETRY_SECONDS ago."""
    since = timezone.now() - timedelta(seconds=settings.NOTIFICATION_RETRY_SECONDS)
    return notifications_retry(failed_before=since)


def notifications_send_pending(*, limit: int = 500) -> dict[str, int]:
    now = timezone.now()
    ids = list(
        Notification.objects.filter(_claimable(now))
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for pk in ids:
        status = notification_send(pk)
        if status:
            counts[status] = counts.get(status, 0) + 1
    return counts
