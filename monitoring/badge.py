"""The navigation badge (active alerts, of which high) without a scan of the alert table per page.

Each center has a version token in the shared cache; whatever changes an alert of the center
(`alerts_sync`, the bulk sweep, acknowledging, closing) replaces the token. A user's counts are
cached under the tokens of the centers they see, so a page costs one cache read (and the user's
centers) while nothing changed, and the first page after a change counts again. Tokens are
random, never a counter that could meet an old cached value again.

The token is replaced when the change is made, inside its transaction, not after commit (no
extra on-commit callback on the clinician's save): a page rendered in the moment between the
change and its commit may cache the old count under the new token, and it then shows until the
cached count expires (BADGE_SECONDS) or the center's next change.

Only with a cache shared by every process (Redis): with the in-process fallback each gunicorn
worker would keep its own tokens, so the badge is then counted on every page (the small embedded
setup). Cached counts also expire after BADGE_SECONDS, the bound on staleness for changes that
bypass the services (e.g. deleting a patient, whose alerts go with it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

BADGE_SECONDS = 60


def _enabled() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


def _version_key(center_id: int) -> str:
    return f"alert-badge:center:{center_id}"


def badge_versions_bump(center_ids: Iterable[int]) -> None:
    """The badges of users who see these centers are counted again on their next page."""
    keys = [_version_key(pk) for pk in set(center_ids)]
    if not keys or not _enabled():
        return
    # With Redis down this is a logged no-op (carttrack.cache): not worth failing a save for.
    cache.set_many({key: uuid.uuid4().hex for key in keys}, timeout=None)


def _visible_center_ids(user) -> list[int]:
    from patients.models import Center

    if user.is_superuser or user.has_perm("patients.view_all_centers"):
        return sorted(Center.objects.values_list("pk", flat=True))
    profile = getattr(user, "profile", None)
    return [] if profile is None or profile.center_id is None else [profile.center_id]


def alert_badge(user) -> tuple[int, int]:
    """(active alerts, of which high) on the patients the user sees, cached per center version."""
    from monitoring.selectors import open_alert_count

    if not _enabled():
        return open_alert_count(user)
    keys = [_version_key(pk) for pk in _visible_center_ids(user)]
    tokens = cache.get_many(keys)
    for key in keys:
        if key not in tokens:
            cache.add(key, uuid.uuid4().hex, timeout=None)
            tokens[key] = cache.get(key)
    if any(tokens.get(k) is None for k in keys):  # the cache is down (a miss): count
        return open_alert_count(user)
    joined = int(user.date_joined.timestamp() * 1_000_000)
    count_key = f"alert-badge:user:{user.pk}:{joined}:" + ",".join(tokens[k] for k in keys)
    counts = cache.get(count_key)
    if counts is None:
        counts = open_alert_count(user)
        cache.set(count_key, counts, timeout=BADGE_SECONDS)
    return tuple(counts)
