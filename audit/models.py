"""Who read what, when and from where: one row per view of a patient page, an alert, an
export or an API read. Rows are only ever inserted (the admin is read-only and the model
refuses changes and deletes), so the record cannot be edited from the application."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AccessEvent(models.Model):
    PATIENT, ALERT, EXPORT, API = "patient", "alert", "export", "api"
    KINDS = [
        (PATIENT, _("patient page")),
        (ALERT, _("alert")),
        (EXPORT, _("export")),
        (API, _("API read")),
    ]

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )
    username = models.CharField(
        _("user name"), max_length=150, db_index=True
    )  # kept if the user is renamed
    kind = models.CharField(_("kind"), max_length=10, choices=KINDS)
    view = models.CharField(_("view"), max_length=100)  # the URL name, e.g. patients:detail
    # What was read: a study ID, an alert number, the export's query; never an identifier.
    target = models.CharField(_("what was read"), max_length=300, blank=True, db_index=True)
    path = models.CharField(_("path"), max_length=500)
    status = models.PositiveSmallIntegerField(_("HTTP status"))
    address = models.GenericIPAddressField(_("address"), null=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("access event")
        verbose_name_plural = _("access events")
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self) -> str:
        return f"{self.username} read {self.kind} {self.target} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Access events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Access events are never deleted.")
