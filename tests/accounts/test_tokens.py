"""API tokens (accounts.tokens): made with a keyed hash, checked for shape, hash, expiry,
revocation and account; use noted at most once a minute; SECRET_KEY rotation with
fallbacks keeps them working."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, User
from audit.models import AuditEntry
from core.masking import scrub_text

pytestmark = pytest.mark.django_db

READ = ["bookings:read"]


def make(user: User, **options) -> tokens.NewToken:
    options.setdefault("name", "CI server")
    options.setdefault("scopes", READ)
    return tokens.api_token_create(user=user, **options)


def test_a_token_is_shown_once_and_stored_only_as_a_keyed_hash(owner, settings) -> None:
    made = make(owner)

    assert re.fullmatch(r"slp_[0-9A-Za-z]{8}_[0-9A-Za-z]{43}", made.secret)
    stored = ApiToken.objects.get()
    assert made.secret.startswith(stored.prefix + "_")
    assert made.secret not in {stored.digest, stored.prefix, stored.name}
    # Keyed: neither a plain hash of the token nor one that holds without SECRET_KEY.
    assert stored.digest != hashlib.sha256(made.secret.encode()).hexdigest()
    assert tokens.api_token_authenticate(raw=made.secret, ip="192.0.2.7") == stored
    settings.SECRET_KEY = (
        "another key entirely, and long enough to be a real one"  # pragma: allowlist secret
    )
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.api_token_authenticate(raw=made.secret, ip=None)
    assert refused.value.reason == "unknown"


def test_the_default_expiry_is_90_days_and_more_than_a_year_is_refused(owner) -> None:
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        made = make(owner)
        assert made.token.expires_at == now + timedelta(days=90)
        assert make(owner, expires_at=now + timedelta(days=365)).token
        with pytest.raises(tokens.TokenInvalid, match="at most 365 days"):
            make(owner, expires_at=now + timedelta(days=365, seconds=1))
        with pytest.raises(tokens.TokenInvalid, match="in the future"):
            make(owner, expires_at=now)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["bookings:read", "admin:all"]}, "Unknown scope: admin:all"),
        ({"name": "   "}, "Give the token a name"),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"name": "CI\x00server"}, "control characters"),
        ({"name": "CI\u202eserver"}, "control characters"),
    ],
)
def test_a_bad_request_for_a_token_is_refused_with_a_reason(owner, options, message) -> None:
    with pytest.raises(tokens.TokenInvalid, match=message):
        make(owner, **options)
    assert not ApiToken.objects.exists()


def test_scopes_are_kept_once_each_in_one_order(owner) -> None:
    made = make(owner, scopes=["event_types:read", "bookings:read", "event_types:read"])
    assert made.token.scopes == ["bookings:read", "event_types:read"]


def test_a_person_has_at_most_twenty_live_tokens(owner) -> None:
    for n in range(tokens.MAX_LIVE_TOKENS_PER_USER):
        make(owner, name=f"token {n}")
    with pytest.raises(tokens.TokenInvalid, match="revoke one first"):
        make(owner)
    tokens.api_token_revoke(token=ApiToken.objects.first(), actor=owner)
    assert make(owner).token


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "slp_",
        "slp_abcdefgh_" + "A" * 42,
        "slp_abcdefgh_" + "A" * 44,
        "slp_abcdefgh_" + "A" * 42 + "-",
        "slp_abcdefgh_" + "A" * 42 + "\x00",
        "slp_abcdefgh_" + "A" * 42 + "é",
        "slp_abcdefg\u0661_" + "A" * 43,  # an Arabic-Indic digit: not ASCII
        "slp_abcdefgh_" + "A" * 43 + "\n",
        "x" * 1_000_000,
        "ghp_" + "A" * 52,
    ],
)
def test_anything_not_shaped_like_a_token_is_refused_before_any_query(raw) -> None:
    with CaptureQueriesContext(connection) as queries, pytest.raises(tokens.TokenRefused) as no:
        tokens.api_token_authenticate(raw=raw, ip=None)
    assert no.value.reason == "malformed"
    assert queries.captured_queries == []


def test_a_known_prefix_with_a_wrong_secret_is_unknown(owner) -> None:
    made = make(owner)
    forged = made.token.prefix + "_" + "0" * tokens.SECRET_LENGTH
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.api_token_authenticate(raw=forged, ip=None)
    assert refused.value.reason == "unknown"


def _refusals() -> list[dict]:
    return [
        entry.data
        for entry in AuditEntry.objects.filter(action="accounts.api_token.refused").order_by("id")
    ]


def test_expired_revoked_and_closed_accounts_tokens_are_refused_and_audited(owner) -> None:
    expired, revoked, closed = make(owner), make(owner), make(owner)
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now())
    assert tokens.api_token_revoke(token=revoked.token, actor=owner)
    assert not tokens.api_token_revoke(token=revoked.token, actor=owner)  # once only
    stranger = User.objects.create_user(email="leaver@example.net", password="x" * 12)
    ApiToken.objects.filter(pk=closed.token.pk).update(user=stranger)
    User.objects.filter(pk=stranger.pk).update(is_active=False)

    reasons = []
    for made in (expired, revoked, closed):
        with pytest.raises(tokens.TokenRefused) as refused:
            tokens.api_token_authenticate(raw=made.secret, ip="198.51.100.4")
        reasons.append(refused.value.reason)

    assert reasons == ["expired", "revoked", "inactive"]
    assert [(d["reason"], d["prefix"]) for d in _refusals()] == [
        ("expired", expired.token.prefix),
        ("revoked", revoked.token.prefix),
        ("inactive", closed.token.prefix),
    ]
    assert AuditEntry.objects.filter(action="accounts.api_token.revoked").count() == 1
    for entry in AuditEntry.objects.filter(action__startswith="accounts.api_token."):
        assert entry.category == "security"
        for made in (expired, revoked, closed):
            assert made.secret not in str(entry.data)


def test_a_token_expires_at_its_time(owner) -> None:
    made = make(owner, expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(made.token.expires_at - timedelta(seconds=1), tick=False):
        assert tokens.api_token_authenticate(raw=made.secret, ip=None)
    with (
        time_machine.travel(made.token.expires_at, tick=False),
        pytest.raises(tokens.TokenRefused, match="expired"),
    ):
        tokens.api_token_authenticate(raw=made.secret, ip=None)


def test_creation_is_audited_with_the_name_sealed(owner) -> None:
    made = make(owner, name="Laptop of Olive Owner", scopes=["bookings:write"])
    entry = AuditEntry.objects.get(action="accounts.api_token.created")

    assert entry.category == "security"
    assert entry.actor_id == str(owner.pk)
    assert entry.data["prefix"] == made.token.prefix
    assert entry.data["scopes"] == ["bookings:write"]
    assert "Olive" not in str(entry.data)
    assert made.secret not in str(entry.data) + str(entry.personal_data)


def test_use_is_noted_at_most_once_a_minute(owner) -> None:
    made = make(owner)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tokens.api_token_authenticate(raw=made.secret, ip="192.0.2.1")
    with (
        time_machine.travel(start + timedelta(seconds=30), tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        tokens.api_token_authenticate(raw=made.secret, ip="192.0.2.2")
    assert not any(q["sql"].startswith("UPDATE") for q in queries.captured_queries)
    made.token.refresh_from_db()
    assert (made.token.last_used_at, made.token.last_used_ip) == (start, "192.0.2.1")
    later = start + timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        tokens.api_token_authenticate(raw=made.secret, ip="2001:db8::5")
    made.token.refresh_from_db()
    assert (made.token.last_used_at, made.token.last_used_ip) == (later, "2001:db8::5")


def test_a_rotated_secret_key_in_the_fallbacks_keeps_tokens_working_and_rekeys_them(
    owner, settings
) -> None:
    made = make(owner)
    old_key, old_digest = settings.SECRET_KEY, made.token.digest
    settings.SECRET_KEY = (
        "the new key, after a rotation, long and random enough"  # pragma: allowlist secret
    )
    settings.SECRET_KEY_FALLBACKS = [old_key]

    assert tokens.api_token_authenticate(raw=made.secret, ip=None) == made.token
    made.token.refresh_from_db()
    assert made.token.digest != old_digest  # re-keyed to the new key on first use

    settings.SECRET_KEY_FALLBACKS = []  # the rotation ends: the re-keyed token still works
    assert tokens.api_token_authenticate(raw=made.secret, ip=None) == made.token
    unused = ApiToken.objects.create(
        user=owner,
        name="made under the old key, never used during the rotation",
        prefix="slp_00000000",
        digest=tokens._digest("slp_00000000_" + "1" * 43, old_key),
        scopes=READ,
        expires_at=timezone.now() + timedelta(days=1),
    )
    with pytest.raises(tokens.TokenRefused, match="unknown"):
        tokens.api_token_authenticate(raw="slp_00000000_" + "1" * 43, ip=None)
    assert unused.revoked_at is None


def test_a_token_in_a_log_line_or_audit_data_is_masked_but_its_prefix_kept(owner) -> None:
    made = make(owner)
    line = scrub_text(f"client sent {made.secret} (x-api-key)")

    assert made.secret not in line
    assert made.token.prefix in scrub_text(f"token {made.token.prefix} was revoked")
