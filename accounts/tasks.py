"""Celery entry points of the accounts app."""

from __future__ import annotations

import logging

from celery import shared_task

# The tasks defined beside their views are registered here for the worker (Celery's
# autodiscovery imports <app>.tasks only): account emails and session recovery links.
from accounts import access_review, emails, recovery  # noqa: F401

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.remind_access_review", ignore_result=True)
def remind_access_review() -> bool:
    """Beat, daily: when the quarterly access review is due, raise the alert
    ``accounts.access_review.due`` for the Auditor group (once per incident: a review
    left undone for a month is one email, not thirty); once signed off, clear it.
    Returns True when this run opened the alert."""
    opened = access_review.remind()
    logger.info("accounts.access_review.reminded", extra={"opened": opened})
    return opened
