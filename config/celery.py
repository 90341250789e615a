"""The Celery app: Redis from REDIS_URL, JSON only, late acknowledgement.

Settings are the ``CELERY_*`` names in config/settings.py. Without REDIS_URL in
development (and always in the unit-test profile) tasks run in-process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("slotpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
