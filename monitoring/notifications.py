"""The notification outbox and its delivery channels.

A notification row is written in the same transaction as its alert; a Celery task sends it after
commit, and a periodic task sends whatever is still pending, so an alert raised while Redis or the
worker was down is still notified once they are back. A sender claims one row with a conditional
UPDATE and goes on only if exactly one row changed, so two senders never send the same message.
Each attempt is stored before it is made, and its error after.

E-mail leaves the hospital's systems: a message carries the pseudonymous study ID, the alert's
title and severity and a link, never a name, MRN or lab value (CLINICAL.md section 4).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from carttrack.queue import task_send
from monitoring.models import (
    CENTER_LEADS_GROUP,
    CLINICIANS_GROUP,
    ESCALATION_LEADS,
    ESCALATION_OTHERS,
    FAILED,
    HIGH,
    INFO,
    OPEN,
    PENDING,
    REMINDER,
    SENDING,
    SENT,
    WARNING,
    WITHDRAWN,
    Alert,
    Notification,
)

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
SEND_TASK = "monitoring.tasks.send_pending_notifications"
# A row left "sending" this long by a crashed sender is claimed again.
STALE_CLAIM = timedelta(minutes=10)


class PermanentError(Exception):
    """Retrying will not help (no address): stop."""


class TransientError(Exception):
    """Worth another attempt later (the mail server did not answer)."""


def recipient_language(user) -> str:
    """The language a user reads messages in: the profile's choice, else the site's default."""
    from patients.models import ClinicianProfile

    language = (
        ClinicianProfile.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
    )
    return language or settings.LANGUAGE_CODE


class EmailChannel:
    def notify(self, notification: Notification) -> None:
        user = notification.recipient
        if not user.email:
            raise PermanentError(f"{user.username} has no e-mail address")
        # Composed in the recipient's language: two clinicians told of one alert may read two.
        with translation.override(recipient_language(user)):
            subject, body = email_message(notification)
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
        except OSError as error:  # SMTP servers fail with socket and smtplib errors
            raise TransientError(str(error)) from error


def email_message(notification: Notification) -> tuple[str, str]:
    """The subject and body in the active language: no name, MRN or lab value."""
    alert = notification.alert
    link = f"{settings.SITE_URL}{alert.get_absolute_url()}"
    values = {
        "severity": alert.get_severity_display(),
        "severity_lower": str(
            SEVERITY_IN_A_SENTENCE.get(alert.severity, alert.get_severity_display())
        ),
        "study_id": alert.patient.study_id,
        "title": alert.title_display,
    }
    subject = _one_line(gettext("[CARTtrack] %(severity)s: %(study_id)s — %(title)s") % values)
    body = (
        gettext("A %(severity_lower)s alert was raised for study patient %(study_id)s:") % values
        + f"\n\n  {alert.title_display}\n\n"
        + message_notes(notification)
        + gettext("Review the alert and its evidence in CARTtrack:")
        + f"\n  {link}\n\n"
        + gettext("This message deliberately carries no patient identifiers or lab values.")
        + "\n"
    )
    return subject, body


# "A high alert was raised": the severity as a word inside a sentence (German keeps a noun's
# capital, so not simply the label in lower case).
SEVERITY_IN_A_SENTENCE = {
    HIGH: pgettext_lazy("severity inside a sentence", "high"),
    WARNING: pgettext_lazy("severity inside a sentence", "warning"),
    INFO: pgettext_lazy("severity inside a sentence", "info"),
    REMINDER: pgettext_lazy("severity inside a sentence", "reminder"),
}
SENT_AGAIN = {
    ESCALATION_OTHERS: _(
        "Sent again: nobody has acknowledged this alert since it was raised (escalated to the "
        "center's other clinicians)."
    ),
    ESCALATION_LEADS: _(
        "Sent again: nobody has acknowledged this alert since it was raised (escalated to the "
        "center's leads)."
    ),
}


def message_notes(notification: Notification) -> str:
    """What else a message must say: how late the result came, why it is sent again."""
    alert, notes = notification.alert, []
    if alert.lateness:
        notes.append(gettext("The result was %(lateness)s.") % {"lateness": alert.lateness})
    if notification.escalation_step:
        notes.append(
            str(SENT_AGAIN.get(notification.escalation_step, SENT_AGAIN[ESCALATION_LEADS]))
        )
    if not alert.patient.hematologists.exists():
        notes.append(gettext("This patient has no responsible clinician yet: please name one."))
    return "".join(f"  {note}\n" for note in notes) + ("\n" if notes else "")


def _one_line(text: str) -> str:
    """A header on one line: a line break in a (legacy) study ID must not stop every e-mail."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def pseudonymous_content(notification: Notification) -> dict:
    """What any channel may say about an alert: never a name, MRN or lab value."""
    alert = notification.alert
    return {
        "alert_id": alert.pk,
        "study_id": alert.patient.study_id,
        "title": str(alert.title_display),
        "severity": alert.severity,
        "link": f"{settings.SITE_URL}{alert.get_absolute_url()}",
        "late": str(alert.lateness),
        "escalation_step": notification.escalation_step,
        "notification_id": notification.pk,  # the receiver's key against a repeated delivery
    }


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>" with the center's secret, hex (header
    X-CARTtrack-Signature: sha256=<hex>; the timestamp is X-CARTtrack-Timestamp, Unix seconds),
    so a receiver can check both the body and its age."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookChannel:
    """A center's signed webhook (its secure messaging or paging system): a JSON POST."""

    def notify(self, notification: Notification) -> None:
        from monitoring.models import CenterAlerting

        setup = CenterAlerting.objects.filter(
            center_id=notification.alert.patient.center_id
        ).first()
        if setup is None or not setup.webhook_url or not setup.webhook_secret:
            raise PermanentError("the center's webhook URL or secret is not set")
        # The fields are specified and neutral; its human texts (title, lateness) are in the
        # site's language: a paging system has no profile to choose one.
        with translation.override(settings.LANGUAGE_CODE):
            content = pseudonymous_content(notification)
        body = json.dumps(content, sort_keys=True).encode()
        timestamp = str(int(timezone.now().timestamp()))
        request = urllib.request.Request(
            setup.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-CARTtrack-Timestamp": timestamp,
                "X-CARTtrack-Signature": "sha256="
                + webhook_signature(setup.webhook_secret, timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (admin's URL)
                answer.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                raise PermanentError(f"the webhook answered {error.code}") from error
            raise TransientError(f"the webhook answered {error.code}") from error
        except OSError as error:
            raise TransientError(str(error)) from error


CHANNELS = {"email": EmailChannel(), "webhook": WebhookChannel()}


def notifications_record(*, alert: Alert) -> list[Notification]:
    """Outbox rows for one alert just raised or re-opened: `notifications_record_many`."""
    return notifications_record_many(alerts=[alert])


def notifications_record_many(*, alerts: list[Alert]) -> list[Notification]:
    """The one recipient policy, for any number of alerts (of many patients) in a constant
    number of queries (CLINICAL.md section 4):

    - history is never e-mailed;
    - the patient's active responsible hematologists; high alerts always, lower severities
      only to those who have not opted out;
    - a high alert whose patient has no active responsible hematologist goes to the center's
      clinicians who receive e-mail (`center_clinicians`);
    - nobody is told twice about one alert (a re-opened alert, an escalation).
    """
    from patients.models import ClinicianProfile, Patient

    alerts = [a for a in alerts if not a.historical]
    if not alerts:
        return []
    doctors: dict[int, list[int]] = {}
    for patient_id, user_id in Patient.hematologists.through.objects.filter(
        patient_id__in={a.patient_id for a in alerts}, user__is_active=True
    ).values_list("patient_id", "user_id"):
        doctors.setdefault(patient_id, []).append(user_id)
    orphans = {a.patient_id for a in alerts if a.severity == HIGH and not doctors.get(a.patient_id)}
    centers = dict(Patient.objects.filter(pk__in=orphans).values_list("pk", "center_id"))
    team = center_clinicians(set(centers.values()))
    low_severity = dict(
        ClinicianProfile.objects.filter(
            user_id__in={u for users in doctors.values() for u in users}
        ).values_list("user_id", "email_low_severity")
    )
    wanted = []
    for alert in alerts:
        if alert.patient_id in orphans:
            users = team.get(centers[alert.patient_id], [])
        else:
            users = [
                u
                for u in doctors.get(alert.patient_id, [])
                if alert.severity == HIGH or low_severity.get(u, True)
            ]
        wanted += [(alert, u) for u in users]
    rows = outbox_record(wanted)
    return rows + webhooks_record([a for a in alerts if a.severity == HIGH])


def webhooks_record(alerts: list[Alert], *, step: int = 0) -> list[Notification]:
    """A webhook row per high alert of a center that has a webhook, unless one was recorded."""
    from monitoring.models import CenterAlerting
    from patients.models import Patient

    if not alerts:
        return []
    hooked = set(CenterAlerting.objects.exclude(webhook_url="").values_list("center_id", flat=True))
    if not hooked:
        return []
    centers = dict(
        Patient.objects.filter(pk__in={a.patient_id for a in alerts}).values_list("pk", "center_id")
    )
    alerts = [a for a in alerts if centers[a.patient_id] in hooked]
    done = set(
        Notification.objects.filter(alert__in=[a.pk for a in alerts], channel="webhook")
        .filter(escalation_step=step)
        .exclude(status=FAILED)
        .values_list("alert_id", flat=True)
    )
    return Notification.objects.bulk_create(
        Notification(alert=a, recipient=None, channel="webhook", escalation_step=step)
        for a in alerts
        if a.pk not in done
    )


def outbox_record(wanted: list[tuple[Alert, int]], *, step: int = 0) -> list[Notification]:
    """Outbox rows for (alert, user id) pairs, except to someone already sent (or about to be
    sent) that alert (`step` 0: the first message, also when it re-opens) or that escalation
    step of it: never the same message twice. One query to read, one to write."""
    sent = Notification.objects.filter(
        alert__in=[a.pk for a, _ in wanted], recipient__isnull=False
    ).exclude(status=FAILED)
    if step:
        sent = sent.filter(escalation_step=step)
    told = set(sent.values_list("alert_id", "recipient_id"))
    rows = []
    for alert, user_id in wanted:
        if (alert.pk, user_id) in told:
            continue
        told.add((alert.pk, user_id))
        rows.append(
            Notification(alert=alert, recipient_id=user_id, channel="email", escalation_step=step)
        )
    return Notification.objects.bulk_create(rows)


def center_clinicians(center_ids: set[int]) -> dict[int, list[int]]:
    """Each center's active clinicians (the Clinicians role) who have an e-mail address."""
    return _center_members(center_ids, CLINICIANS_GROUP)


def center_leads(center_ids: set[int]) -> dict[int, list[int]]:
    """Each center's active leads (the "Center leads" group) who have an e-mail address."""
    return _center_members(center_ids, CENTER_LEADS_GROUP)


def centers_without_recipients() -> list:
    """Centers whose high alerts would reach nobody: no active clinician with an e-mail
    address (a patient without a responsible clinician, and every escalation, needs one).
    Shown to the admin (CenterAlerting's list) and by `manage.py check --database default`."""
    from patients.models import Center

    centers = list(Center.objects.order_by("code"))
    reached = center_clinicians({c.pk for c in centers})
    return [c for c in centers if not reached.get(c.pk)]


def _center_members(center_ids: set[int], group: str) -> dict[int, list[int]]:
    from django.contrib.auth import get_user_model

    members: dict[int, list[int]] = {}
    if not center_ids:
        return members
    for center_id, user_id in (
        get_user_model()
        .objects.filter(is_active=True, profile__center_id__in=center_ids, groups__name=group)
        .exclude(email="")
        .order_by("pk")
        .values_list("profile__center_id", "pk")
        .distinct()
    ):
        members.setdefault(center_id, []).append(user_id)
    return members


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
