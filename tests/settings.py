"""The test profile of config.settings (pytest's DJANGO_SETTINGS_MODULE).

Setting ENVIRONMENT here, before config.settings is read, keeps a developer's
``.env`` and database out of the suite whatever the shell exports.
"""

import os

os.environ["ENVIRONMENT"] = "test"

from config.settings import *  # noqa: F403

# Hashing passwords slowly protects real accounts, not test fixtures.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
