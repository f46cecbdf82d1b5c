"""carttrack.queue.task_send: a service starts a task by its registered name (no import of the
app's tasks module), exactly as calling the task object would."""

from datetime import timedelta

import pytest
from celery.exceptions import NotRegistered
from django.utils import timezone

from carttrack.celery import app
from carttrack.queue import task_send
from imports.models import IdempotencyKey
from tests.factories import UserFactory


def test_a_task_named_runs_as_the_task_object_would(db, monkeypatch, settings):
    sender = UserFactory(username="lab-system")
    old, new = (
        IdempotencyKey.objects.create(
            sender=sender, key=key, request_hash="0" * 64, status_code=201, response={}
        )
        for key in ("old", "new")
    )
    expired = timezone.now() - timedelta(days=settings.IDEMPOTENCY_KEY_DAYS + 1)
    IdempotencyKey.objects.filter(pk=old.pk).update(created_at=expired)
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # in process, no broker

    result = task_send("imports.tasks.purge_idempotency_keys", retry=False)

    assert result.successful()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_an_unknown_name_is_refused():
    with pytest.raises(NotRegistered):
        task_send("imports.tasks.no_such_task")
