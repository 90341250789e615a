"""A client asks for a copy of their data, or its erasure, from their own pages; the
request lands in the back-office queue."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from accounts.models import DataSubjectRequest, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def clara(db: None) -> User:
    return User.objects.create_user(
        email="clara@client.example", password=PASSWORD, name="Clara Client"
    )


def signed_in(user: User) -> Client:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    return browser


def post(browser: Client, kind: str) -> object:
    page = browser.get("/accounts/privacy/").content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    token = found.group(1) if found else ""
    return browser.post(
        "/accounts/privacy/request/", {"kind": kind, "csrfmiddlewaretoken": token}, follow=True
    )


def test_the_promised_date_is_the_tables_in_the_clients_zone(clara: User) -> None:
    """Filed at 16:49 UTC on 1 December, 01:49 on the 2nd in Tokyo: the message and the
    table give one due date, in the client's zone."""
    clara.time_zone = "Asia/Tokyo"
    clara.save(update_fields=["time_zone"])
    with time_machine.travel(datetime(2026, 12, 1, 16, 49, tzinfo=UTC), tick=False):
        answer = post(signed_in(clara), "access").content.decode()

    assert "We will answer by 1 January 2027." in answer
    assert "<td>2 December 2026</td><td>1 January 2027</td>" in answer


def test_my_bookings_links_to_my_data(clara: User) -> None:
    page = signed_in(clara).get("/bookings/")

    assert page.status_code == 200
    assert b'href="/accounts/privacy/"' in page.content


def test_a_client_files_an_access_request_once(clara: User) -> None:
    browser = signed_in(clara)

    answer = post(browser, "access")

    request = DataSubjectRequest.objects.get()
    assert (request.subject, request.kind, request.status, request.filed_by_subject) == (
        clara,
        "access",
        "open",
        True,
    )
    assert f"reference {request.pk}".encode() in answer.content
    assert b"Ask for a copy of my data" not in answer.content  # one open request per kind
    entry = AuditEntry.objects.get(action="accounts.dsr.filed")
    assert (entry.actor_id, entry.data["via"], entry.data["kind"]) == (
        str(clara.pk),
        "client",
        "access",
    )
    again = post(browser, "access")
    assert b"already open" in again.content
    assert DataSubjectRequest.objects.count() == 1


def test_a_client_files_an_erasure_request_and_nothing_is_erased_yet(clara: User) -> None:
    post(signed_in(clara), "erasure")

    request = DataSubjectRequest.objects.get()
    assert request.kind == "erasure"
    assert not request.steps.exists()
    assert User.objects.get(pk=clara.pk).name == "Clara Client"


def test_no_correction_or_unknown_kind_from_the_client(clara: User) -> None:
    answer = post(signed_in(clara), "rectification")

    assert b"Choose a copy of your data or its erasure." in answer.content
    assert not DataSubjectRequest.objects.exists()


def test_without_csrf_or_sign_in_nothing_is_filed(clara: User) -> None:
    browser = signed_in(clara)
    assert browser.post("/accounts/privacy/request/", {"kind": "access"}).status_code == 403
    anonymous = Client().post("/accounts/privacy/request/", {"kind": "access"})
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous["Location"]
    assert Client().get("/accounts/privacy/").status_code == 302
    assert not DataSubjectRequest.objects.exists()


def test_someone_elses_requests_are_not_shown(clara: User) -> None:
    post(signed_in(clara), "access")
    otto = User.objects.create_user(email="otto@other.example", password=PASSWORD, name="Otto")

    page = signed_in(otto).get("/accounts/privacy/")

    assert b"Your requests" not in page.content
