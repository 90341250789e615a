"""The Celery app: Redis from REDIS_URL, JSON only, late acknowledgement.

Settings are the ``CELERY_*`` names in config/settings.py. Without REDIS_URL in
development (and always in the unit-test profile) tasks run in-process.
"""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("slotpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _django_logging(**_: Any) -> None:
    """Workers and beat log through Django's LOGGING, as the web processes do: the same
    format and the filters that mask personal data and query strings. (Without this
    receiver Celery replaces the root logger's handlers with its own, unfiltered.)"""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
