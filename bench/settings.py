"""Settings for processes started by :mod:`bench.stack` (gunicorn, Celery worker, beat).

Why a settings module of its own: the webhook pipeline stores only the event types
that have a handler, and no domain handler exists yet. Listing ``bench`` as an app
lets ``webhooks.apps.WebhooksConfig.ready`` find ``bench/webhook_handlers.py`` by the
same ``autodiscover_modules("webhook_handlers")`` that real domain apps will use, in
every process that loads these settings, and only there: the test suite's own process
(``tests.settings``) never imports it, so its registry stays empty for the unit tests
that rely on "no handler, not stored".

It builds on the test profile (``tests.settings`` sets ENVIRONMENT=test): no ``.env``
is read or written and nothing is required, so the launcher must pass every secret
explicitly (it does, see ``bench.stack.Secrets``), or web and worker processes would
each invent different keys. ``bench/trivial/`` is added for the benchmark's baseline.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
