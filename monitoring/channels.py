"""The delivery channels of the notification outbox: e-mail to a clinician, a center's webhook.

Each channel is a small class with one `notify` method, looked up in `CHANNELS` by the
notification's `channel`; its error says whether another attempt may help (`TransientError`) or
not (`PermanentError`). The outbox (`monitoring.notifications`) claims, attempts and retries.

E-mail leaves the hospital's systems: a message carries the pseudonymous study ID, the alert's
title and severity and a link, never a name, MRN or lab value (CLINICAL.md section 4); so does
the webhook's JSON (`pseudonymous_content`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from monitoring.models import (
    ESCALATION_LEADS,
    ESCALATION_OTHERS,
    HIGH,
    INFO,
    REMINDER,
    WARNING,
    CenterAlerting,
    Notification,
)


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
