from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger("core.outbox")


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from celery.signals import task_postrun

        task_postrun.connect(_outbox_task_ran, dispatch_uid="core.outbox.task_ran")


def _outbox_task_ran(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    """A worker ran a task to an end: its outbox row, if any, is done. A failure here
    (the database went away) only means the row is sent again later."""
    from core import outbox

    try:
        outbox.task_ran(task_id)
    except Exception:  # at least once: the relay sends it again
        logger.warning("outbox.mark_done_failed", exc_info=True)
