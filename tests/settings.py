"""The test profile of config.settings (pytest's DJANGO_SETTINGS_MODULE).

Setting ENVIRONMENT here, before config.settings is read, keeps a developer's
``.env`` and database out of the suite whatever the shell exports.
"""

import os

os.environ["ENVIRONMENT"] = "test"

from config.settings import *  # noqa: F403

# Hashing passwords slowly protects real accounts, not test fixtures.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test runner empties tables with TRUNCATE between transactional tests; the audit
# tables refuse it (audit/migrations/0006) except on a test_* database with this switch.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c audit.allow_truncate=on"  # noqa: F405

# Under pytest-xdist (make test runs one worker per core) each worker has its own
# database (pytest-django adds the worker's suffix) and, here, its own Redis database,
# so that one worker's Celery queues and keys never meet another's.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and REDIS_URL:  # noqa: F405
    from urllib.parse import urlsplit

    _redis = urlsplit(REDIS_URL)  # noqa: F405
    _db = (int(_redis.path.lstrip("/") or 0) + int(_worker[2:])) % 16
    REDIS_URL = _redis._replace(path=f"/{_db}").geturl()
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
