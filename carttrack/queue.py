"""Start a Celery task by its registered name (as the beat schedule in carttrack/celery.py names
them): a floor's service starts the work its roof module (`<app>/tasks.py`) does without
importing that module, so services and tasks form no import circle."""

from __future__ import annotations

from carttrack.celery import app


def task_send(name: str, *args, **options):
    """`apply_async` of the task registered as `name` ("<app>.tasks.<function>"); like calling
    the task object (CELERY_TASK_ALWAYS_EAGER runs it in process). Raises KeyError for a name
    no tasks module registers, and whatever the broker raises when it is unreachable."""
    if name not in app.tasks:  # a web process: the apps' tasks modules are not loaded yet
        app.loader.import_default_modules()  # what the worker does at start (autodiscovery)
    return app.tasks[name].apply_async(args, **options)
