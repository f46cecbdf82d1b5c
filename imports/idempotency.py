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

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction

from imports.models import IdempotencyKey


class KeyReusedError(Exception):
    """The same Idempotency-Key came with a different request."""


def request_hash(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    if row.request_hash != digest:
        raise KeyReusedError(
            "This Idempotency-Key was already used for a different request; use a new key for "
            "a new batch."
        )
    return row, False


def key_answer(row: IdempotencyKey, *, status_code: int, response: dict) -> None:
    row.status_code, row.response = status_code, response
    row.save(update_fields=["status_code", "response"])
