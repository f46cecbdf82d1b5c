"""Sign-in with an OpenID Connect provider (Entra ID, Keycloak, Okta ...; mozilla-django-oidc).

- ``ProviderBackend``: the authorization-code flow; the user is found (or made) by the
  ``preferred_username`` claim (else ``sub``); the OIDC_ROLES_CLAIM claim (a list: Entra ID's app
  roles, Keycloak's client roles) gives the role (hematologist, registry, admin) and
  OIDC_CENTER_CLAIM the center, both applied at every sign-in, like the directory's groups. No
  role: no sign-in.
- ``backchannel_logout``: the provider's back-channel logout (OpenID Connect Back-Channel
  Logout 1.0). Signing out at the provider (or the provider ending the session: an account
  disabled, a password reset) makes it POST a signed ``logout_token`` naming the session
  (``sid``); every CARTtrack session signed in with that provider session ends at once.
- The second factor is the provider's: CARTtrack's own TOTP is not asked of provider users
  (require it at the provider, e.g. Entra ID conditional access).
"""

from __future__ import annotations

import logging

import jwt
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.dispatch import receiver
from django.http import Http404, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.directory import account_roles_apply
from accounts.ldap_config import ROLES

logger = logging.getLogger(__name__)

BACKEND = "accounts.oidc.ProviderBackend"
_SID_KEY = "carttrack:oidc-sid:"
_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _configured() -> bool:
    return bool(getattr(settings, "OIDC_OP_ISSUER", ""))


def claims_roles(claims: dict) -> tuple[set[str], str | None]:
    """The roles (hematologist, registry, admin) and center code the claims give."""
    roles = claims.get(settings.OIDC_ROLES_CLAIM) or []
    if isinstance(roles, str):
        roles = [roles]
    center = claims.get(settings.OIDC_CENTER_CLAIM)
    return {r for r in roles if r in ROLES}, (str(center) if center else None)


class ProviderBackend(OIDCAuthenticationBackend):
    def get_username(self, claims):
        return str(claims.get("preferred_username") or claims["sub"])[:150]

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=self.get_username(claims))

    def verify_claims(self, claims):
        return bool(claims.get("sub"))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(
            self.get_username(claims), email=claims.get("email", "")
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        user.first_name = claims.get("given_name", "")[:150]
        user.last_name = claims.get("family_name", "")[:150]
        user.email = claims.get("email", "")
        user.save(update_fields=["first_name", "last_name", "email"])
        roles, center_code = claims_roles(claims)
        if not account_roles_apply(user=user, roles=roles, center_code=center_code):
            logger.warning("provider user %s has no CARTtrack role: refused", user.pk)
            return None
        return user

    def authenticate(self, request, **kwargs):
        if not _configured():
            return None
        return super().authenticate(request, **kwargs)


@receiver(user_logged_in)
def _remember_provider_session(sender, request, user, **kwargs):
    """The provider's session ID (the ID token's sid) → this session, for back-channel logout."""
    if request is None or request.session.get(BACKEND_SESSION_KEY) != BACKEND:
        return
    token = request.session.get("oidc_id_token")
    if not token:
        return
    claims = jwt.decode(token, options={"verify_signature": False})  # verified at sign-in
    if claims.get("sid"):
        keys = cache.get(_SID_KEY + claims["sid"]) or []
        cache.set(
            _SID_KEY + claims["sid"],
            [*keys, request.session.session_key],
            timeout=settings.SESSION_COOKIE_AGE,
        )


def _session_store() -> type[SessionBase]:
    return import_string(settings.SESSION_ENGINE + ".SessionStore")


@login_not_required
@csrf_exempt
@never_cache
@require_POST
def backchannel_logout(request):
    if not _configured():
        raise Http404
    token = request.POST.get("logout_token", "")
    backend = ProviderBackend()
    try:
        key = backend.retrieve_matching_jwk(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.OIDC_RP_SIGN_ALGO],
            audience=settings.OIDC_RP_CLIENT_ID,
            issuer=settings.OIDC_OP_ISSUER,
        )
    except (jwt.PyJWTError, SuspiciousOperation, ValueError, KeyError) as error:
        logger.warning("back-channel logout refused: %s", type(error).__name__)
        return HttpResponse(status=400)
    if _LOGOUT_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
        return HttpResponse(status=400)
    sid = claims.get("sid")
    if not sid:
        return HttpResponse(status=400)  # we ask for backchannel_logout_session_required
    store = _session_store()
    for session_key in cache.get(_SID_KEY + sid) or []:
        store(session_key).delete()
    cache.delete(_SID_KEY + sid)
    logger.info("back-channel logout: provider session ended, its CARTtrack sessions too")
    return HttpResponse(status=200)
