"""The sandbox's own tests play its operator: the dashboards are for the operator (a superuser) only
(sandbox/access.py), so the ``client`` here signs in as a superuser on its first
request (once the test's database access has begun). The pages a provider shows
everyone do not care who is signed in."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from core.encryption import blind_index
from tests.conftest import PASSWORD

OPERATOR = "operator@slotpay.example"


class OperatorClient(Client):
    def request(self, **request: Any) -> Any:
        if not self.session.get("_auth_user_id"):
            operator = User.objects.filter(
                email_index=blind_index(OPERATOR)
            ).first() or User.objects.create_superuser(email=OPERATOR, password=PASSWORD)
            self.force_login(operator)
        return super().request(**request)


@pytest.fixture
def client() -> Client:
    return OperatorClient()
