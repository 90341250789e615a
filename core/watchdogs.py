"""Watchdogs over the outbox (core/alerts.py runs them every five minutes).

- ``outbox.given_up``: after-commit tasks that failed MAX_ATTEMPTS times and are no
  longer sent (an email never delivered, a Checkout Session never opened, a refund
  never retried). Each was logged once as ``outbox.given_up``; this keeps it in front
  of a person until ``manage.py outbox_retry`` sends it again or it is purged
  (GIVEN_UP_KEPT after it was made).
"""

from __future__ import annotations

from django.db.models import Count

from core.alerts import Problem, register_watchdog
from core.outbox import GIVEN_UP_KEPT, MAX_ATTEMPTS, given_up


def outbox_given_up() -> list[Problem]:
    counts = dict(given_up().values_list("task").annotate(rows=Count("pk")).order_by("task"))
    total = sum(counts.values())
    if not total:
        return []
    errors = dict(
        given_up().values_list("last_error").annotate(rows=Count("pk")).order_by("last_error")
    )
    by_task = ", ".join(f"{task}: {count}" for task, count in sorted(counts.items()))
    by_error = ", ".join(
        f"{error or 'unknown'}: {count}" for error, count in sorted(errors.items())
    )
    return [
        Problem(
            "outbox.given_up",
            f"{total} after-commit task{'s' if total != 1 else ''} given up after "
            f"{MAX_ATTEMPTS} attempts ({by_task}).",
            [
                f"Last errors: {by_error}. The workers' log has each under outbox.given_up "
                "and outbox.task_failed.",
                "Fix the cause, then send them again: manage.py outbox_retry (--task NAME "
                "for one kind; --dry-run lists them).",
                f"Rows given up are deleted {GIVEN_UP_KEPT.days} days after they were made.",
            ],
        )
    ]


register_watchdog("outbox.given_up", outbox_given_up)
