"""django-auth-ldap's settings built from CARTtrack's LDAP_* settings (README "Sign-in").

Imported by carttrack/settings.py (only when LDAP_SERVER_URI is set) and by the tests, which
point it at a private slapd; nothing here touches Django's settings or the database.
"""

from __future__ import annotations

import ldap
from django_auth_ldap.config import (
    GroupOfNamesType,
    LDAPSearch,
    NestedActiveDirectoryGroupType,
)

ROLES = ("hematologist", "registry", "admin")


def mapping_parse(raw: str, *, what: str, allowed: tuple[str, ...] | None = None) -> dict:
    """'hematologist=cn=hem,ou=groups,dc=x;admin=cn=...' -> {'hematologist': 'cn=hem,...'}.
    Entries are separated by ';' (a DN has commas); the first '=' ends the name."""
    from django.core.exceptions import ImproperlyConfigured

    mapping = {}
    for entry in filter(None, (part.strip() for part in raw.split(";"))):
        name, sep, dn = entry.partition("=")
        name, dn = name.strip(), dn.strip()
        if not sep or not name or not dn:
            raise ImproperlyConfigured(f"{what}: {entry!r} is not NAME=GROUP_DN")
        if allowed is not None and name not in allowed:
            raise ImproperlyConfigured(f"{what}: {name!r} is not one of {', '.join(allowed)}")
        mapping[name] = dn
    return mapping


def ldap_settings(
    *,
    server_uri: str,
    bind_dn: str = "",
    bind_password: str = "",
    start_tls: bool = False,
    user_base: str,
    user_filter: str = "(uid=%(user)s)",
    group_base: str,
    group_type: str = "groupOfNames",
    role_groups: str = "",
    center_groups: str = "",
    timeout_seconds: int = 3,
) -> dict:
    """The AUTH_LDAP_* settings and our own DIRECTORY_* mappings, as a dict of settings."""
    from django.core.exceptions import ImproperlyConfigured

    if group_type == "groupOfNames":
        kind = GroupOfNamesType()
        group_filter = "(objectClass=groupOfNames)"
    elif group_type == "activeDirectory":
        kind = NestedActiveDirectoryGroupType()
        group_filter = "(objectClass=group)"
    else:
        raise ImproperlyConfigured("LDAP_GROUP_TYPE must be groupOfNames or activeDirectory")
    return {
        "AUTH_LDAP_SERVER_URI": server_uri,
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": bind_password,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": kind,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        # Groups are read again at every sign-in and every re-check (never cached).
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        # A directory that does not answer is given up on quickly: local break-glass accounts
        # (the next backend) must still sign in during an outage.
        "AUTH_LDAP_CONNECTION_OPTIONS": {
            ldap.OPT_NETWORK_TIMEOUT: timeout_seconds,
            ldap.OPT_TIMEOUT: timeout_seconds,
            ldap.OPT_REFERRALS: 0,
        },
        "DIRECTORY_ROLE_GROUPS": mapping_parse(role_groups, what="LDAP_ROLE_GROUPS", allowed=ROLES),
        "DIRECTORY_CENTER_GROUPS": mapping_parse(center_groups, what="LDAP_CENTER_GROUPS"),
    }
