"""Schemathesis over the API's own schema (``/api/schema/``), as each kind of caller:
no 5xx, and every answer (its status, content type and body) as the schema documents it.

The application is called in-process (WSGI) on the test database, with the API tokens
of two clients and two builders, and with none. Cancelling reaches the providers: none
runs here, so it answers the documented 503 ``provider_unavailable``, and the booking
stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings

from accounts import tokens
from tests.bookings.test_isolation import cast

__all__ = ["cast"]

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ALL_SCOPES = ["bookings:read", "bookings:write", "event_types:read"]
ROLES = ("anonymous", "client_a", "client_b", "builder_a", "builder_b")
# Examples per operation and caller (hypothesis shrinks a failure to its simplest case).
EXAMPLES = 25


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    """Called as WSGI, Django would close the database connection at each request's
    start and end, the test's transaction with it (its test client does what this does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _headers(role: str, cast: dict) -> dict[str, str]:
    """The caller: nobody, or a client's or a builder's token with every scope."""
    if role == "anonymous":
        return {}
    secret = tokens.api_token_create(user=cast[role], name="fuzz", scopes=ALL_SCOPES).secret
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(role: str, cast: dict) -> None:
    headers = _headers(role, cast)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5  # root, list, detail, cancel, event types

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(headers=headers)

        answers_as_documented()


def test_every_operation_documents_the_common_errors_in_their_one_shape(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert operations
    for operation in operations:
        assert {"400", "401", "403", "404", "429"} <= set(operation["responses"])
        for status_code, response in operation["responses"].items():
            if status_code.startswith(("4", "5")):
                body = response["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}
    codes = schema["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert "throttled" in codes["code"]["enum"]
