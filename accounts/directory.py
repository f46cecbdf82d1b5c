"""Sign-in with the hospital directory (LDAP / Active Directory, django-auth-ldap).

- ``DirectoryBackend`` binds as the service account, finds the user with LDAP_USER_FILTER (which
  can also exclude disabled accounts, as AD's userAccountControl filter in the README does),
  binds as the user with the password typed, then maps the user's groups: a role group gives the
  CARTtrack role (hematologist → *Clinicians*, registry → *Registry staff*, admin → staff and
  superuser), a center group gives the center. A directory user in no role group is refused.
  Directory users get no usable local password. With LDAP_SERVER_URI empty it does nothing.
- ``DirectoryRecheckMiddleware``: a signed-in directory user is looked up again at the first
  request once LDAP_RECHECK_SECONDS (default 300) have passed since sign-in or the last check;
  removed, disabled (no longer matched by the filter) or left with no role group, the session
  ends at that request; roles and center are brought up to date. While the directory does not
  answer, sessions go on (an outage is not a dismissal) and it is asked again an interval later.
- Local accounts (ModelBackend, after this backend) stay for the embedded default and as
  break-glass administrators: they sign in whether or not the directory answers.
"""

from __future__ import annotations

import logging
import time

import ldap
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend

logger = logging.getLogger(__name__)

BACKEND = "accounts.directory.DirectoryBackend"
CHECKED_AT = "accounts:directory_checked_at"


def _configured() -> bool:
    return bool(getattr(settings, "LDAP_SERVER_URI", ""))


def directory_roles(group_dns) -> tuple[set[str], str | None]:
    """The roles and the center code a user's group DNs give."""
    dns = {dn.lower() for dn in group_dns}
    roles = {r for r, dn in settings.DIRECTORY_ROLE_GROUPS.items() if dn.lower() in dns}
    centers = [c for c, dn in settings.DIRECTORY_CENTER_GROUPS.items() if dn.lower() in dns]
    return roles, (sorted(centers)[0] if centers else None)


def directory_user_sync(*, user, group_dns) -> bool:
    """Apply the directory's roles and center to the local user; False if it gives no role."""
    roles, center_code = directory_roles(group_dns)
    return account_roles_apply(user=user, roles=roles, center_code=center_code)


@transaction.atomic
def account_roles_apply(*, user, roles: set[str], center_code: str | None) -> bool:
    """A directory or provider user's role and center, as the local groups, flags and profile
    (the same for LDAP and OpenID Connect); False when there is none (its roles are removed)."""
    from patients.models import Center, ClinicianProfile
    from patients.roles import roles_ensure

    groups = roles_ensure()
    wanted = {
        g
        for r, g in (("hematologist", groups["clinician"]), ("registry", groups["registry"]))
        if r in roles
    }
    user.groups.remove(*[g for g in (groups["clinician"], groups["registry"]) if g not in wanted])
    user.groups.add(*wanted)
    admin = "admin" in roles
    if (user.is_staff, user.is_superuser) != (admin, admin):
        user.is_staff = user.is_superuser = admin
        user.save(update_fields=["is_staff", "is_superuser"])
    if not roles:
        return False  # every role taken away (above); the caller refuses or signs out
    center = Center.objects.filter(code=center_code).first() if center_code else None
    ClinicianProfile.objects.update_or_create(user=user, defaults={"center": center})
    return True


class DirectoryBackend(LDAPBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if not _configured():
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        if not directory_user_sync(user=user, group_dns=ldap_user.group_dns):
            logger.warning("directory user %s has no CARTtrack role group: refused", user.pk)
            return None
        return user


def directory_user_check(user) -> bool | None:
    """True: still in the directory with a role (synced); False: removed, disabled or
    without a role; None: the directory did not answer."""
    backend = DirectoryBackend()
    try:
        found = backend.populate_user(user.get_username())
    except ldap.LDAPError:
        return None
    if found is None:
        # django-auth-ldap logs and swallows a server that is down: tell it from "not found".
        try:
            connection = ldap.initialize(settings.AUTH_LDAP_SERVER_URI)
            connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 3)
            connection.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
            connection.unbind_s()
        except ldap.LDAPError:
            return None
        return False
    return directory_user_sync(user=found, group_dns=found.ldap_user.group_dns)


@receiver(user_logged_in)
def _stamp_directory_sign_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[CHECKED_AT] = time.time()


class DirectoryRecheckMiddleware:
    """After AuthenticationMiddleware: a directory user's account is re-checked every
    LDAP_RECHECK_SECONDS; gone, the session ends at this request (the sign-in page follows)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and request.session.get(BACKEND_SESSION_KEY) == BACKEND
        ):
            now = time.time()
            checked = request.session.get(CHECKED_AT, 0)
            if now - checked >= settings.LDAP_RECHECK_SECONDS:
                verdict = directory_user_check(user)
                if verdict is False:
                    logger.warning("directory user %s no longer active: signed out", user.pk)
                    logout(request)  # LoginRequiredMiddleware sends the browser to sign in
                else:
                    if verdict is None:
                        logger.warning("directory unreachable: user %s kept signed in", user.pk)
                    request.session[CHECKED_AT] = now
        return self.get_response(request)
