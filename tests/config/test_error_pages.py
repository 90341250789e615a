"""Error pages are generic: a title and the request id to quote, never the details."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.config.urls_raising import PRIVATE_DETAIL

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.config.urls_raising")]

# What the error pages must not show, whatever went wrong.
DETAILS = [
    "Traceback",
    "RuntimeError",
    "PermissionDenied",
    "SuspiciousOperation",
    "jane.doe",
    "4242",
    "urls_raising",
    "CSRF",
    "Referer",
    "csrfmiddlewaretoken",
    "DEBUG",
]


def _assert_generic(response, status: int, title: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert f"<h1>{title}</h1>" in page
    request_id = response["X-Request-ID"]
    assert re.search(rf"quote reference <code>{re.escape(request_id)}</code>", page)
    for detail in DETAILS:
        assert detail not in page, detail
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_not_found_shows_the_request_id_and_not_the_path(client):
    response = client.get(
        "/nothing/here/jane.doe@example.com", headers={"X-Request-ID": "req-404-abcdef"}
    )

    _assert_generic(response, 404, "Not found")
    assert response["X-Request-ID"] == "req-404-abcdef"
    assert "nothing/here" not in response.content.decode()


def test_a_crash_is_a_generic_500_with_the_request_id(client, caplog):
    client.raise_request_exception = False

    response = client.get("/test/crash")

    _assert_generic(response, 500, "Something went wrong")
    # The details went to the log instead, masked, under the same request id.
    record = next(r for r in caplog.records if r.name == "django.request")
    assert record.request_id == response["X-Request-ID"]
    assert "RuntimeError" in record.exc_text
    assert PRIVATE_DETAIL not in record.exc_text


def test_permission_denied_is_a_generic_403(client):
    _assert_generic(client.get("/test/forbidden"), 403, "Forbidden")


def test_a_suspicious_request_is_a_generic_400(client):
    _assert_generic(client.get("/test/suspicious"), 400, "Bad request")


def test_a_csrf_failure_is_a_generic_403(caplog):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/admin/login/", {"username": "someone@example.com", "password": "x"})

    _assert_generic(response, 403, "Forbidden")
    assert "security.csrf-failure" in [record.getMessage() for record in caplog.records]
