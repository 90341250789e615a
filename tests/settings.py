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
