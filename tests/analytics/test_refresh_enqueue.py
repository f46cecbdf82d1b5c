"""The "Refresh now" button when the task queue cannot be reached: the run says so instead of
spinning forever."""

from __future__ import annotations

import pytest

from analytics.models import FAILED, RefreshRun
from carttrack.celery import app
from tests.analytics.test_dataset import infused_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def unreachable_broker(settings):
    """Publish to a port where no Redis listens.

    The app's connection and producer pools are bound to the broker URL, so they are set aside
    (not closed: kombu's pool registry would hand the closed pool to later tests) and restored.
    """
    settings.CELERY_TASK_ALWAYS_EAGER = False
    previous = (app.conf.broker_url, app._pool, app.amqp._producer_pool)
    app._pool = app.amqp._producer_pool = None
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    yield
    if app._pool is not None:
        app._pool.force_close_all()
    app.conf.broker_url, app._pool, app.amqp._producer_pool = previous


def test_refresh_with_redis_down_marks_the_run_failed(
    clinician_client, unreachable_broker, django_capture_on_commit_callbacks
):
    infused_patient(followup=100)
    with django_capture_on_commit_callbacks(execute=True):
        response = clinician_client.post("/dashboard/refresh/")
    assert response.status_code == 302
    run = RefreshRun.objects.get()
    assert run.status == FAILED
    assert run.error.startswith("Could not reach the task queue")
    assert run.finished_at is not None
    # The failed run no longer blocks the next "Refresh now".
    html = clinician_client.get("/dashboard/").content.decode()
    assert 'class="message hidden"' in html
