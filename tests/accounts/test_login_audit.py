"""Failed sign-ins and lockouts are counted per hour; only the first of each are audited.

Each audit entry serialises on the chain head's lock, so a flood of failed sign-ins
(one entry each) held every other audited write up. Like refused webhook deliveries,
every one is counted and the first SECURITY_EVENT_AUDIT_LIMIT per action and hour are
audited.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from audit.models import AuditEntry, SecurityEventCount
from audit.services import record_capped, verify_chain
from core.encryption import blind_index
from tests.conftest import PASSWORD

FAILED = "accounts.user.login_failed"
LOCKED = "accounts.user.locked_out"


def _counted(action: str) -> int:
    return SecurityEventCount.objects.filter(action=action).aggregate(total=Sum("count"))["total"]


def _audited(action: str) -> int:
    return AuditEntry.objects.filter(action=action).count()


def _hours(action: str) -> int:
    """An hour may turn during the test: each hour has its own allowance."""
    return SecurityEventCount.objects.filter(action=action).count()


def test_the_default_limit():
    assert settings.SECURITY_EVENT_AUDIT_LIMIT == 100


def test_500_failed_sign_ins_are_all_counted_and_the_first_audited(client, db):
    limit = settings.SECURITY_EVENT_AUDIT_LIMIT
    for n in range(500):
        client.post(
            "/accounts/login/",
            {"username": f"guess{n}@example.net", "password": "wrong"},  # pragma: allowlist secret
            REMOTE_ADDR="203.0.113.7",
        )

    assert _counted(FAILED) == 500
    assert 0 < _audited(FAILED) <= limit * _hours(FAILED)
    # The address was locked out at its limit; every refusal after it counts as one.
    assert _counted(LOCKED) == 500 - settings.AXES_ADDRESS_FAILURE_LIMIT + 1
    assert 0 < _audited(LOCKED) <= limit * _hours(LOCKED)
    assert verify_chain().ok


def test_audited_failures_keep_the_email_out_of_data(client, db):
    client.post(
        "/accounts/login/",
        {"username": "Someone@Example.net", "password": "wrong"},  # pragma: allowlist secret
    )

    entry = AuditEntry.objects.get(action=FAILED)
    index = blind_index("Someone@Example.net")
    # The chained part: a bucket shared by 1 in 65,536 addresses, never the index itself.
    assert entry.data == {"email_bucket": index[:4], "count_this_hour": 1}
    assert json.loads(entry.personal_data)["values"] == {
        "email": "Someone@Example.net",
        "email_index": index,
    }


def test_a_lockout_is_audited(client, owner):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/accounts/login/",
            {"username": "owner@example.com", "password": "wrong"},  # pragma: allowlist secret
        )

    entry = AuditEntry.objects.get(action=LOCKED)
    assert entry.category == "security"
    index = blind_index("owner@example.com")
    assert entry.data == {"email_bucket": index[:4], "count_this_hour": 1}
    assert json.loads(entry.personal_data)["values"] == {"email_index": index}
    # The right password is refused while locked: counted again, as a failure too.
    client.post("/accounts/login/", {"username": "owner@example.com", "password": PASSWORD})
    assert (_counted(FAILED), _counted(LOCKED)) == (settings.AXES_FAILURE_LIMIT + 1, 2)


def test_the_limit_is_per_action(db, settings):
    settings.SECURITY_EVENT_AUDIT_LIMIT = 3

    counts = [record_capped("tests.event.one", category="security", actor=None) for _ in range(5)]
    record_capped("tests.event.two", category="security", actor="tests", data={"n": 1})

    assert counts[-1] == 5 or _hours("tests.event.one") > 1
    assert _counted("tests.event.one") == 5
    assert _audited("tests.event.one") <= 3 * _hours("tests.event.one")
    assert _audited("tests.event.two") == 1
    entry = AuditEntry.objects.get(action="tests.event.two")
    assert (entry.actor_id, entry.data) == ("tests", {"n": 1, "count_this_hour": 1})
    assert verify_chain().ok


@pytest.mark.parametrize("path", ["/admin/audit/securityeventcount/"])
def test_the_counts_are_listed_in_the_admin(client, staff, path):
    record_capped(FAILED, category="security", actor=None)
    client.force_login(staff)

    response = client.get(path)

    assert response.status_code == 200
    assert FAILED in response.content.decode()


def _flood(start: threading.Barrier, events: int) -> None:
    try:
        start.wait()
        for _ in range(events):
            record_capped("tests.event.flood", category="security", actor=None)
    finally:
        connection.close()


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_events_are_each_counted_once(settings):
    """The first writer of an hour creates its row while others wait for it: no count
    is lost, and exactly the limit is audited."""
    settings.SECURITY_EVENT_AUDIT_LIMIT = 30
    writers, each = 8, 25
    start = threading.Barrier(writers)
    with ThreadPoolExecutor(max_workers=writers) as pool:
        for future in [pool.submit(_flood, start, each) for _ in range(writers)]:
            future.result()

    assert _counted("tests.event.flood") == writers * each
    if _hours("tests.event.flood") == 1:
        assert _audited("tests.event.flood") == 30
        counts = AuditEntry.objects.filter(action="tests.event.flood").values_list(
            "data__count_this_hour", flat=True
        )
        assert sorted(counts) == list(range(1, 31))
    assert verify_chain().ok
