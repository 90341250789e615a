"""Tokens need a verified address, and die with the password: a reset, a change on the
account page and "sign out everywhere" revoke every token of the account, with one
audit entry that counts them, and the pages and emails say so."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/accounts/tokens/"
EVERYWHERE = "/accounts/session/sign-out-everywhere/"
RESET_LINK = re.compile(r"https?://\S+/accounts/password/reset/([A-Za-z0-9_-]+)/")
NEW = "a brand new passphrase 42"  # pragma: allowlist secret


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def api(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def two_tokens(user: User) -> list[str]:
    return [
        tokens.api_token_create(user=user, name=name, scopes=["bookings:read"]).secret
        for name in ("laptop", "cron")
    ]


@pytest.fixture
def unverified(db: None) -> User:
    return User.objects.create_user(
        email="unsure@example.org", password=PASSWORD, name="Una", email_verified_at=None
    )


def test_an_unverified_account_is_told_why_it_cannot_make_a_token(unverified) -> None:
    browser = signed_in(unverified)
    page = browser.get(URL).content.decode()

    assert "Please verify your email address first" in page
    assert 'action="/accounts/verify/resend/"' in page
    assert "Make token" not in page
    refused = browser.post(
        URL,
        {
            "name": "script",
            "scopes": ["bookings:read"],
            "expires_on": timezone.localdate().replace(year=timezone.localdate().year + 1),
            "password": PASSWORD,
            "form_id": "anything",
        },
    )
    assert refused.status_code == 403
    assert "Please verify your email address first" in refused.content.decode()
    with pytest.raises(tokens.TokenInvalid, match="verify your email address"):
        tokens.api_token_create(user=unverified, name="script", scopes=["bookings:read"])
    assert not ApiToken.objects.exists()


def test_a_token_of_an_unverified_account_is_refused(owner) -> None:
    """A token made before the address stopped being verified (an email change, or a
    token from before this rule) does not work until the address is verified again."""
    secret = tokens.api_token_create(user=owner, name="laptop", scopes=["bookings:read"]).secret
    assert api(secret).get("/api/v1/bookings/").status_code == 200
    User.objects.filter(pk=owner.pk).update(email_verified_at=None)

    answer = api(secret).get("/api/v1/bookings/")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"
    assert "verify your email address" in answer.json()["error"]["message"]
    refused = AuditEntry.objects.filter(action="accounts.api_token.refused").latest("id")
    assert refused.data["reason"] == "unverified"


def test_a_password_reset_revokes_every_token_and_says_so(
    owner, django_capture_on_commit_callbacks
) -> None:
    secrets = two_tokens(owner)
    anonymous = Client()
    with django_capture_on_commit_callbacks(execute=True):
        anonymous.post("/accounts/password/reset/", {"email": owner.email})
    assert "revokes every API token" in mail.outbox[-1].body
    link = RESET_LINK.findall(mail.outbox[-1].body)[-1]
    with django_capture_on_commit_callbacks(execute=True):
        done = anonymous.post(
            f"/accounts/password/reset/{link}/",
            {"new_password1": NEW, "new_password2": NEW},
            follow=True,
        )

    assert "every API token revoked" in done.content.decode()
    assert "every API token of the account was revoked" in mail.outbox[-1].body
    for secret in secrets:
        assert api(secret).get("/api/v1/bookings/").status_code == 401
    entry = AuditEntry.objects.get(action="accounts.api_token.revoked_all")
    assert entry.data == {"count": 2, "reason": "password_reset"}
    assert entry.category == "security"


def test_sign_out_everywhere_revokes_every_token_and_says_so(owner) -> None:
    secrets = two_tokens(owner)
    browser = signed_in(owner)
    assert "every API token" in browser.get(EVERYWHERE).content.decode()

    done = browser.post(EVERYWHERE, follow=True)

    assert "and your 2 API token(s) revoked" in done.content.decode()
    for secret in secrets:
        assert api(secret).get("/api/v1/bookings/").status_code == 401
    entry = AuditEntry.objects.get(action="accounts.api_token.revoked_all")
    assert entry.data == {"count": 2, "reason": "signed_out_everywhere"}
    assert AuditEntry.objects.filter(action="accounts.session.signed_out_everywhere").count() == 1


def test_a_password_change_revokes_every_token_and_says_so(
    owner, django_capture_on_commit_callbacks
) -> None:
    secrets = two_tokens(owner)
    browser = signed_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        done = browser.post(
            "/accounts/password/",
            {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW},
            follow=True,
        )

    assert "and your 2 API token(s) revoked" in done.content.decode()
    assert "every API token of the account was revoked" in mail.outbox[-1].body
    for secret in secrets:
        assert api(secret).get("/api/v1/bookings/").status_code == 401
    entry = AuditEntry.objects.get(action="accounts.api_token.revoked_all")
    assert entry.data == {"count": 2, "reason": "password_change"}


def test_nothing_to_revoke_records_no_count(owner) -> None:
    assert tokens.api_tokens_revoke_all(user=owner, actor=owner, reason="password_reset") == 0
    assert not AuditEntry.objects.filter(action="accounts.api_token.revoked_all").exists()


def test_revoked_tokens_stay_revoked_at_their_first_time(owner) -> None:
    """An already revoked token keeps its time and is not counted again."""
    made = tokens.api_token_create(user=owner, name="old", scopes=["bookings:read"])
    tokens.api_token_revoke(token=made.token, actor=owner)
    first = ApiToken.objects.get().revoked_at
    two_tokens(owner)

    assert tokens.api_tokens_revoke_all(user=owner, actor=owner, reason="password_reset") == 2
    assert ApiToken.objects.get(pk=made.token.pk).revoked_at == first
