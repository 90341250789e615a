"""Recent sign-ins: one row per successful sign-in, with the network (never the
address) and a short device description (never the user agent string); kept 90 days,
spent or expired one-time links 30 days past their expiry, API tokens a year past
theirs, stored sessions a day past theirs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts import links
from accounts.models import ApiToken, DataSubjectRequest, OneTimeLink, SignIn
from accounts.retention import ApiTokens, OneTimeLinks, Sessions, SignIns
from accounts.signals import sign_in_device, sign_in_network
from audit import purges
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def test_a_sign_in_records_the_network_and_the_device(stranger) -> None:
    browser = Client(HTTP_USER_AGENT=FIREFOX_LINUX, REMOTE_ADDR="203.0.113.77")
    answer = browser.post(
        "/accounts/login/", {"username": "stranger@example.net", "password": PASSWORD}
    )
    assert answer.status_code == 302
    sign_in = SignIn.objects.get(user=stranger)
    assert (sign_in.network, sign_in.device) == ("203.0.113.0/24", "Firefox on Linux")
    # The audit entry of the sign-in is still written.
    assert AuditEntry.objects.filter(action="accounts.user.login_succeeded").exists()
    page = browser.get("/accounts/").content.decode()
    assert "203.0.113.0/24" in page
    assert "Firefox on Linux" in page
    assert "203.0.113.77" not in page


def test_a_failed_sign_in_records_nothing(stranger) -> None:
    Client().post("/accounts/login/", {"username": "stranger@example.net", "password": "no"})
    assert not SignIn.objects.exists()


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.200", "192.0.2.0/24"),
        ("2001:db8:1234:5678:9abc::1", "2001:db8:1234:5678::/64"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("not an address", ""),
        (None, ""),
    ],
)
def test_the_network_is_a_24_or_a_64(address, network) -> None:
    assert sign_in_network(address) == network


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (FIREFOX_LINUX, "Firefox on Linux"),
        (SAFARI_IPHONE, "Mobile Safari on iOS"),
        ("", "Unknown device"),
        ("curl/8.5.0", "curl"),
        ("Mozilla/5.0 (Linux; Android 4.4; Nexus 5) AppleWebKit/537.36 Version/4.0", "Android"),
        ("\x00\x01\x02", "Unknown device"),
        ("Mozilla/5.0 " + "x" * 100_000, "Unknown device"),
    ],
)
def test_the_device_is_a_short_description(agent, device) -> None:
    assert sign_in_device(agent) == device


def test_sign_ins_are_deleted_after_90_days_unless_a_request_holds_them(stranger, owner) -> None:
    now = timezone.now()
    old = SignIn.objects.create(user=stranger, at=now - timedelta(days=91))
    recent = SignIn.objects.create(user=stranger, at=now - timedelta(days=89))
    held = SignIn.objects.create(user=owner, at=now - timedelta(days=200))
    DataSubjectRequest.objects.create(subject=owner, kind=DataSubjectRequest.Kind.ACCESS)
    rule = SignIns()
    forecast = rule.forecast(now)
    assert (forecast.due, forecast.held) == (1, {"open data-subject request": 1})
    assert rule.purge_batch(now, 100) == 1
    assert set(SignIn.objects.values_list("pk", flat=True)) == {recent.pk, held.pk}
    assert not SignIn.objects.filter(pk=old.pk).exists()


def test_links_are_deleted_30_days_after_their_expiry(stranger) -> None:
    now = timezone.now()
    links.issue(OneTimeLink.Purpose.VERIFY_EMAIL, max_age=timedelta(hours=1), user=stranger)
    live = OneTimeLink.objects.get()
    spent_long_ago = OneTimeLink.objects.create(
        purpose=OneTimeLink.Purpose.RESET_PASSWORD,
        digest="a" * 64,
        user=stranger,
        created_at=now - timedelta(days=40),
        expires_at=now - timedelta(days=39),
        used_at=now - timedelta(days=40),
    )
    expired_lately = OneTimeLink.objects.create(
        purpose=OneTimeLink.Purpose.RESET_PASSWORD,
        digest="b" * 64,
        user=stranger,
        expires_at=now - timedelta(days=29),
    )
    rule = OneTimeLinks()
    assert rule.forecast(now).due == 1
    assert rule.purge_batch(now, 100) == 1
    remaining = set(OneTimeLink.objects.values_list("pk", flat=True))
    assert remaining == {live.pk, expired_lately.pk}
    assert spent_long_ago.pk not in remaining


def test_tokens_go_a_year_after_their_expiry_unless_a_request_holds_them(stranger, owner):
    now = timezone.now()

    def token(user, prefix: str, expired_days_ago: int) -> ApiToken:
        return ApiToken.objects.create(
            user=user,
            name=prefix,
            prefix=prefix,
            digest=prefix.ljust(64, "0"),
            expires_at=now - timedelta(days=expired_days_ago),
        )

    old = token(stranger, "old", 366)
    recent = token(stranger, "recent", 364)
    held = token(owner, "held", 400)
    DataSubjectRequest.objects.create(subject=owner, kind=DataSubjectRequest.Kind.ERASURE)
    rule = ApiTokens()
    forecast = rule.forecast(now)
    assert (forecast.due, forecast.held) == (1, {"open data-subject request": 1})
    assert rule.purge_batch(now, 100) == 1
    assert set(ApiToken.objects.values_list("pk", flat=True)) == {recent.pk, held.pk}
    assert not ApiToken.objects.filter(pk=old.pk).exists()


def test_stored_sessions_go_a_day_after_they_expire(client, stranger) -> None:
    client.force_login(stranger)
    live = client.session.session_key
    Session.objects.create(
        session_key="expired" * 4, session_data="", expire_date=timezone.now() - timedelta(days=2)
    )
    Session.objects.create(
        session_key="lately" * 4, session_data="", expire_date=timezone.now() - timedelta(hours=1)
    )
    assert Sessions().purge_batch(timezone.now(), 100) == 1
    assert set(Session.objects.values_list("session_key", flat=True)) == {live, "lately" * 4}


def test_the_rules_are_registered() -> None:
    names = {rule.name for rule in purges.rules()}
    assert {
        "accounts.sign_ins",
        "accounts.one_time_links",
        "accounts.api_tokens",
        "accounts.sessions",
    } <= names
