"""Every periodic task beat schedules is one a worker knows: a typo in a task's name
would otherwise only show as a worker's "unregistered task" error at 3 am."""

import pytest
from django.conf import settings

from config.celery import app


@pytest.mark.django_db  # loading the tasks runs Django's checks, which read the database
def test_every_scheduled_task_is_registered() -> None:
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled - set(app.tasks) == set()
    assert {
        "audit.tasks.write_checkpoint",
        "accounts.dsr.erasure_steps_retry_task",
    } <= scheduled
