"""The encryption-key tests' cast: seven clients written under the key in use."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.conftest import PASSWORD


@pytest.fixture
def old_key(settings):
    """The key everything in the test database (canary included) was written with."""
    return settings.FIELD_ENCRYPTION_KEY[0]


@pytest.fixture
def clients(old_key):
    # Written under the old key: accounts, their creation audit entries, the canary.
    return [
        User.objects.create_user(email=f"client{n}@example.com", password=PASSWORD, name=f"C {n}")
        for n in range(7)
    ]
