"""The bookings API with tokens: 401 and a Bearer challenge without credentials, each
view's scope, the same visibility rules as a session, no CSRF for a token, and hostile
Authorization headers refused with 401, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, User
from bookings.models import Booking
from tests.bookings.test_isolation import cast

__all__ = ["cast"]

pytestmark = pytest.mark.django_db

ALL_SCOPES = list(ApiToken.Scope.values)
CHALLENGE = 'Bearer realm="Slotpay API"'


def token_for(user: User, scopes: list[str] | None = None) -> str:
    return tokens.api_token_create(user=user, name="script", scopes=scopes or ALL_SCOPES).secret


def api(secret: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return Client(headers=headers, enforce_csrf_checks=True)


def endpoints(cast: dict) -> list[tuple[str, str]]:
    mine = cast["booking_a"].reference
    return [
        ("get", "/api/v1/bookings/"),
        ("get", f"/api/v1/bookings/{mine}/"),
        ("post", f"/api/v1/bookings/{mine}/cancel/"),
    ]


def test_anonymous_calls_get_401_with_a_bearer_challenge(cast) -> None:
    for method, path in endpoints(cast):
        answer = getattr(api(), method)(path)
        assert answer.status_code == 401, path
        assert answer["WWW-Authenticate"] == CHALLENGE
        assert answer.json()["error"] == {
            "code": "not_authenticated",
            "message": "Send an API token (Authorization: Bearer slp_...; make one at "
            "/accounts/tokens/) or sign in.",
        }
    assert Booking.objects.get(pk=cast["booking_a"].pk).status == "confirmed"


def test_the_catalogue_and_the_root_are_public(cast) -> None:
    assert api().get("/api/v1/event-types/").status_code == 200
    root = api().get("/api/v1/")
    assert root.status_code == 200
    assert root.json() == {
        "bookings": "http://testserver/api/v1/bookings/",
        "event_types": "http://testserver/api/v1/event-types/",
        "schema": "http://testserver/api/schema/",
        "docs": "http://testserver/api/docs/",
        "redoc": "http://testserver/api/redoc/",
        "tokens": "http://testserver/accounts/tokens/",
    }


def test_a_client_token_sees_the_clients_bookings_and_a_builder_token_the_builders(
    cast,
) -> None:
    for person, mine, theirs in (
        ("client_a", cast["booking_a"], cast["booking_b"]),
        ("builder_b", cast["booking_b"], cast["booking_a"]),
    ):
        caller = api(token_for(cast[person]))
        listing = caller.get("/api/v1/bookings/")
        assert listing.status_code == 200, listing.content
        assert [b["id"] for b in listing.json()["results"]] == [str(mine.reference)]
        assert caller.get(f"/api/v1/bookings/{mine.reference}/").status_code == 200
        assert caller.get(f"/api/v1/bookings/{theirs.reference}/").status_code == 404
        assert caller.post(f"/api/v1/bookings/{theirs.reference}/cancel/").status_code == 404
    # The client's card details stay the client's, with a token too.
    builder_view = api(token_for(cast["builder_a"])).get(
        f"/api/v1/bookings/{cast['booking_a'].reference}/"
    )
    assert builder_view.json()["payments"][0]["card_last4"] is None


@pytest.mark.parametrize(
    ("scopes", "method", "path", "needed"),
    [
        (["bookings:write", "event_types:read"], "get", "/api/v1/bookings/", "bookings:read"),
        (["event_types:read"], "get", "/api/v1/bookings/{id}/", "bookings:read"),
        (["bookings:read", "event_types:read"], "post", "/api/v1/bookings/{id}/cancel/",
         "bookings:write"),
        (["bookings:read", "bookings:write"], "get", "/api/v1/event-types/", "event_types:read"),
    ],
)  # fmt: skip
def test_a_token_without_the_views_scope_gets_403_naming_it(
    cast, scopes, method, path, needed
) -> None:
    caller = api(token_for(cast["client_a"], scopes))
    answer = getattr(caller, method)(path.format(id=cast["booking_a"].reference))

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "permission_denied"
    assert needed in answer.json()["error"]["message"]
    assert answer["WWW-Authenticate"] == (
        f'{CHALLENGE}, error="insufficient_scope", scope="{needed}"'
    )
    assert Booking.objects.get(pk=cast["booking_a"].pk).status == "confirmed"


def test_each_scope_opens_its_views(cast) -> None:
    reference = cast["booking_a"].reference
    reader = api(token_for(cast["client_a"], ["bookings:read"]))
    catalogue = api(token_for(cast["client_a"], ["event_types:read"]))

    assert reader.get("/api/v1/bookings/").status_code == 200
    assert reader.get(f"/api/v1/bookings/{reference}/").status_code == 200
    assert catalogue.get("/api/v1/event-types/").status_code == 200


def test_a_session_is_not_limited_by_scopes_but_needs_csrf_to_cancel(cast) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(cast["client_a"])
    reference = cast["booking_a"].reference

    assert browser.get("/api/v1/bookings/").status_code == 200
    assert browser.get("/api/v1/event-types/").status_code == 200
    refused = browser.post(f"/api/v1/bookings/{reference}/cancel/")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


def test_a_token_reaches_the_cancel_without_csrf(cast) -> None:
    """CSRF protects cookies; a token is sent on purpose. The booking is already
    canceled, so the answer is the service's own refusal: past authentication, CSRF
    and scope, without calling a provider (tests/test_seed_api.py cancels for real)."""
    Booking.objects.filter(pk=cast["booking_a"].pk).update(status="canceled")
    answer = api(token_for(cast["client_a"], ["bookings:write"])).post(
        f"/api/v1/bookings/{cast['booking_a'].reference}/cancel/"
    )
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["code"] == "cancel_refused"


def test_expired_revoked_and_closed_accounts_tokens_get_401(cast) -> None:
    expired = tokens.api_token_create(user=cast["client_a"], name="old", scopes=ALL_SCOPES)
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now())
    revoked = tokens.api_token_create(user=cast["client_a"], name="gone", scopes=ALL_SCOPES)
    tokens.api_token_revoke(token=revoked.token, actor=cast["client_a"])
    closed_secret = token_for(cast["client_b"])
    User.objects.filter(pk=cast["client_b"].pk).update(is_active=False)

    for secret, word in (
        (expired.secret, "expired"),
        (revoked.secret, "revoked"),
        (closed_secret, "closed"),
    ):
        answer = api(secret).get("/api/v1/bookings/")
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "authentication_failed"
        assert word in answer.json()["error"]["message"]
        assert answer["WWW-Authenticate"] == f'{CHALLENGE}, error="invalid_token"'


def test_a_bad_token_is_refused_even_with_a_session(cast) -> None:
    browser = Client()
    browser.force_login(cast["client_a"])
    answer = browser.get("/api/v1/bookings/", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer slp_",
        "Bearer " + "A" * 100_000,
        "B" * 100_000,
        "Bearer slp_abcdefgh_" + "A" * 42 + "\x00",
        "Bearer slp_abcdefgh_" + "é" * 43,
        "Bearer \u202eslp_abcdefgh_" + "A" * 43,
        "bearer  slp_abcdefgh_" + "A" * 43,
        "Bearer slp_abcdefgh_" + "A" * 43,
        "Basic dXNlcjpwYXNz",
        "\x00\x00",
        "Token abc",
    ],
)
def test_hostile_authorization_headers_get_401_never_a_500(cast, header) -> None:
    answer = Client(headers={"Authorization": header}).get("/api/v1/bookings/")

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] in ("not_authenticated", "authentication_failed")
    assert answer["WWW-Authenticate"].startswith(CHALLENGE)


def test_a_token_notes_when_and_from_where_it_was_used(cast) -> None:
    made = tokens.api_token_create(user=cast["client_a"], name="cron", scopes=ALL_SCOPES)
    Client(headers={"Authorization": f"Bearer {made.secret}"}, REMOTE_ADDR="203.0.113.9").get(
        "/api/v1/bookings/"
    )
    made.token.refresh_from_db()
    assert made.token.last_used_ip == "203.0.113.9"
    assert timezone.now() - made.token.last_used_at < timedelta(minutes=1)


def test_the_schema_declares_both_schemes_and_each_operation_its_scope() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemes = schema["components"]["securitySchemes"]

    assert schemes["apiToken"]["type"] == "http"
    assert schemes["apiToken"]["scheme"] == "bearer"
    assert schemes["cookieAuth"]["in"] == "cookie"
    from bookings import api as views

    expected = {
        ("/api/v1/bookings/", "get"): views.BookingList.required_scope,
        ("/api/v1/bookings/{id}/", "get"): views.BookingDetail.required_scope,
        ("/api/v1/bookings/{id}/cancel/", "post"): views.BookingCancel.required_scope,
        ("/api/v1/event-types/", "get"): views.EventTypeList.required_scope,
    }
    for (path, method), scope in expected.items():
        operation = schema["paths"][path][method]
        assert {"apiToken": []} in operation["security"], path
        assert {"cookieAuth": []} in operation["security"], path
        assert f"Token scope: `{scope}`" in operation["description"], path
    assert "/api/v1/" in schema["paths"]
