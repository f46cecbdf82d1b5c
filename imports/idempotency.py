"""Idempotency-Key: a re-sent batch gets the first answer, not a duplicate error.

A laboratory system re-sends on any network doubt. With the same key and the same request it
gets the answer stored with the first (201 with the ids, or 202 with the same job); the same key
with a different request is a mistake on the sender's side (422). The key is claimed inside the
import's transaction, so a concurrent re-send waits for the first to finish, and a refused batch
leaves no key behind.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from imports.models import IdempotencyKey


class KeyReusedError(Exception):
    """The same Idempotency-Key came with a different request."""


def request_hash(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: The longest Idempotency-Key stored (the column's length); a longer one is refused, never
#: cut: two different keys with one 255-character prefix would collide.
KEY_MAX_LENGTH = 255


def key_problem(key: str) -> str | None:
    """What is wrong with an Idempotency-Key header, or None."""
    if len(key) > KEY_MAX_LENGTH:
        return (
            f"The Idempotency-Key is {len(key)} characters long; send one of at most "
            f"{KEY_MAX_LENGTH} (a UUID is 36)."
        )
    if "\x00" in key:
        return "The Idempotency-Key contains a NUL byte; send printable characters only."
    return None


def key_claim(*, sender, key: str, digest: str) -> tuple[IdempotencyKey, bool]:
    """(row, first): first is True when this request claimed the key (run it, then `key_answer`);
    otherwise the row holds the first request's answer. Runs inside the caller's transaction."""
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                sender=sender, key=key, request_hash=digest, status_code=0, response={}
            )
            return row, True
    except IntegrityError:
        row = IdempotencyKey.objects.get(sender=sender, key=key)
    if row.created_at < keys_expired_before():
        # Expired, not yet purged: forget it and claim the key as new. The delete holds the
        # row until this transaction ends, so a concurrent re-send waits as for a new key, and
        # a refused import (rolled back) leaves the old row as it was.
        IdempotencyKey.objects.filter(pk=row.pk).delete()
        return key_claim(sender=sender, key=key, digest=digest)
    if row.request_hash != digest:
        raise KeyReusedError(
            "This Idempotency-Key was already used for a different request; use a new key for "
            "a new batch."
        )
    return row, False


def keys_expired_before(now: datetime | None = None) -> datetime:
    """Keys stored before this moment have expired: exactly IDEMPOTENCY_KEY_DAYS old still
    counts."""
    return (now or timezone.now()) - timedelta(days=settings.IDEMPOTENCY_KEY_DAYS)


def keys_purge(*, now: datetime | None = None) -> int:
    """Delete every expired key in one statement (nothing refers to a key); returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=keys_expired_before(now)).delete()
    return deleted


def key_answer(row: IdempotencyKey, *, status_code: int, response: dict) -> None:
    row.status_code, row.response = status_code, response
    row.save(update_fields=["status_code", "response"])
