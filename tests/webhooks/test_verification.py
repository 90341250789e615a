"""Every refusal the endpoints make, through the real endpoints, signed as providers sign.

Each refused delivery answers the same generic 400 and stores nothing; the reason is
counted and audited (without the body).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time

import pytest
from django.test import override_settings

from audit.models import AuditEntry
from tests.webhooks.conftest import Sender, current_secret, default_event, endpoint, sign
from webhooks.models import WebhookEvent, WebhookRejection

pytestmark = pytest.mark.django_db
OLD_SECRET = "whsec_FAKE-old-one"  # pragma: allowlist secret
NEW_SECRET = "whsec_FAKE-new-one"  # pragma: allowlist secret
WRONG_SECRET = "whsec_FAKE-wrong"  # pragma: allowlist secret
PRIVATE_TEN = [ipaddress.ip_network("10.0.0.0/8")]


def assert_refused(response, provider: str, reason: str, *, stored: int = 0) -> None:
    assert response.status_code == 400
    body = response.json()
    assert body == {"error": "invalid_request", "request_id": response["X-Request-ID"]}
    assert WebhookEvent.objects.count() == stored
    rejection = WebhookRejection.objects.get(provider=provider, reason=reason)
    assert rejection.count >= 1
    entry = AuditEntry.objects.filter(action="webhooks.delivery.rejected").latest("sequence")
    assert entry.category == "security"
    assert entry.data["reason"] == reason


def test_valid_signature(sender: Sender, provider: str, handlers) -> None:
    response = sender.post()
    assert response.status_code == 200
    assert response.json() == {"status": "stored"}
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert len(handlers.calls) == 1
    assert not WebhookRejection.objects.exists()


def test_invalid_signature(sender: Sender, provider: str, handlers) -> None:
    data = default_event(provider)
    header = sign(current_secret(provider), json.dumps(data))
    data["tampered"] = True  # the body changed after signing
    response = sender.post(data, header=header)
    assert_refused(response, provider, "signature_mismatch")
    assert handlers.calls == []


def test_invalid_signature_from_an_unknown_secret(sender: Sender, provider: str) -> None:
    response = sender.post(secret="whsec_FAKE-not-one-of-ours")
    assert_refused(response, provider, "signature_mismatch")


def test_invalid_signature_header_missing_or_malformed(sender: Sender, provider: str) -> None:
    assert_refused(sender.post(header=""), provider, "signature_malformed")
    assert_refused(sender.post(header="t=abc,v1=00"), provider, "signature_malformed")
    assert_refused(sender.post(header=f"t={int(time.time())}"), provider, "signature_malformed")


@pytest.mark.parametrize("age", [301, 3600])
def test_timestamp_validation_refuses_stale(sender: Sender, provider: str, age: int) -> None:
    response = sender.post(timestamp=int(time.time()) - age)
    assert_refused(response, provider, "timestamp_stale")


@pytest.mark.parametrize("ahead", [65, 86_400])
def test_timestamp_validation_refuses_far_future(sender: Sender, provider: str, ahead) -> None:
    response = sender.post(timestamp=int(time.time()) + ahead)
    assert_refused(response, provider, "timestamp_in_future")


@pytest.mark.parametrize("offset", [-295, 55])
def test_timestamp_validation_accepts_within_tolerance(
    sender: Sender, provider: str, handlers, offset: int
) -> None:
    assert sender.post(timestamp=int(time.time()) + offset).status_code == 200


@override_settings(WEBHOOK_TOLERANCE_SECONDS=30)
def test_timestamp_validation_tolerance_is_configurable(sender: Sender, provider: str) -> None:
    assert_refused(sender.post(timestamp=int(time.time()) - 31), provider, "timestamp_stale")


def test_replay_protection_new_timestamp_old_signature(sender: Sender, provider: str) -> None:
    body = json.dumps(default_event(provider))
    old = int(time.time()) - 600
    captured = sign(current_secret(provider), body, old)  # a delivery seen ten minutes ago
    signature = captured.split("v1=")[1]
    response = sender.post(body=body, header=f"t={int(time.time())},v1={signature}")
    assert_refused(response, provider, "signature_mismatch")


def test_replay_protection_resent_old_delivery(sender: Sender, provider: str) -> None:
    body = json.dumps(default_event(provider))
    captured = sign(current_secret(provider), body, int(time.time()) - 600)
    assert_refused(sender.post(body=body, header=captured), provider, "timestamp_stale")


def test_replay_protection_same_delivery_twice_is_stored_once(
    sender: Sender, provider: str, handlers
) -> None:
    body = json.dumps(default_event(provider))
    header = sign(current_secret(provider), body)
    first = sender.post(body=body, header=header)
    second = sender.post(body=body, header=header)
    assert (first.json(), second.json()) == ({"status": "stored"}, {"status": "duplicate"})
    assert WebhookEvent.objects.count() == 1
    assert len(handlers.calls) == 1


def test_second_secret_of_a_rotation_is_accepted(sender: Sender, provider: str, handlers):
    name = "STRIPE_WEBHOOK_SECRETS" if provider == "stripe" else "CALENDLY_WEBHOOK_SIGNING_KEYS"
    with override_settings(**{name: [OLD_SECRET, NEW_SECRET]}):
        assert sender.post(secret=NEW_SECRET).status_code == 200
        assert sender.post(secret=OLD_SECRET).status_code == 200
        refused = sender.post(secret=WRONG_SECRET)
        assert_refused(refused, provider, "signature_mismatch", stored=2)
    assert len(handlers.calls) == 2


def test_header_with_two_signatures_during_a_roll(sender: Sender, provider: str, handlers):
    """While a secret rolls the provider signs with both, one v1 per secret."""
    body = json.dumps(default_event(provider))
    now = int(time.time())
    theirs = sign("whsec_FAKE-someone-elses", body, now)
    ours = sign(current_secret(provider), body, now).split(",")[1]
    assert sender.post(body=body, header=f"{theirs},{ours}").status_code == 200


@override_settings(WEBHOOK_MAX_BODY_BYTES=4096)
def test_oversized_body_is_refused(sender: Sender, provider: str) -> None:
    data = default_event(provider)
    data["padding"] = "x" * 5000
    assert_refused(sender.post(data), provider, "body_too_large")


def test_oversized_body_at_the_default_limit(sender: Sender, provider: str) -> None:
    data = default_event(provider)
    data["padding"] = "x" * (256 * 1024)
    assert_refused(sender.post(data), provider, "body_too_large")


def test_malformed_json_is_refused(sender: Sender, provider: str) -> None:
    assert_refused(sender.post(body='{"id": "evt_1", '), provider, "malformed_json")


def test_wrong_content_type_is_refused(sender: Sender, provider: str) -> None:
    response = sender.post(content_type="application/x-www-form-urlencoded")
    assert_refused(response, provider, "unsupported_content_type")


def test_missing_required_key_is_refused(sender: Sender, provider: str) -> None:
    data = default_event(provider)
    if provider == "stripe":
        del data["data"]["object"]["id"]
    else:
        del data["payload"]["uri"]
    assert_refused(sender.post(data), provider, "schema_invalid")
    detail = AuditEntry.objects.latest("sequence").data["detail"]
    assert detail in ("data.object.id: missing", "payload.uri: missing")


def test_unknown_keys_are_ignored(sender: Sender, provider: str, handlers) -> None:
    data = default_event(provider)
    data["a_field_from_the_future"] = {"nested": [1, 2]}
    assert sender.post(data).status_code == 200


def test_test_mode_event_refused_with_a_live_key(stripe_sender: Sender) -> None:
    live_key = "rk_" + "live_FAKE-for-this-test"  # pragma: allowlist secret
    with override_settings(STRIPE_API_KEY=live_key):
        assert_refused(stripe_sender.post(), "stripe", "livemode_mismatch")


@override_settings(
    STRIPE_WEBHOOK_IP_ALLOWLIST=PRIVATE_TEN,
    CALENDLY_WEBHOOK_IP_ALLOWLIST=PRIVATE_TEN,
)
def test_disallowed_ip_is_refused(sender: Sender, provider: str, handlers) -> None:
    assert_refused(sender.post(REMOTE_ADDR="192.0.2.7"), provider, "ip_not_allowed")
    # Without trusted proxies, X-Forwarded-For is anyone's to write: not believed.
    spoofed = sender.post(REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert spoofed.status_code == 400
    assert sender.post(REMOTE_ADDR="10.9.8.7").status_code == 200
    with override_settings(TRUSTED_PROXY_COUNT=1):
        behind_proxy = sender.post(REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
        assert behind_proxy.status_code == 200
        assert (
            sender.post(
                REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.7"
            ).status_code
            == 400
        )


def test_wrong_path_token_is_an_ordinary_404(sender: Sender, provider: str, client) -> None:
    wrong = sender.post(path=endpoint(provider, "not-the-token"))
    unknown = client.post("/no-such-page/", data="{}", content_type="application/json")
    assert wrong.status_code == unknown.status_code == 404
    # The same page, but for the reference (request id) every error page carries.
    assert wrong.content.replace(wrong["X-Request-ID"].encode(), b"") == unknown.content.replace(
        unknown["X-Request-ID"].encode(), b""
    )
    assert wrong["Content-Type"] == unknown["Content-Type"]
    assert WebhookEvent.objects.count() == 0
    assert not WebhookRejection.objects.exists()


def test_no_redirect_and_post_only(sender: Sender, provider: str, client, handlers) -> None:
    without_slash = endpoint(provider).rstrip("/")
    assert sender.post(path=without_slash).status_code == 200
    for method in ("get", "put", "delete"):
        response = getattr(client, method)(endpoint(provider))
        assert response.status_code == 405
    assert client.get(without_slash).status_code == 405
    wrong_without_slash = endpoint(provider, "nope").rstrip("/")
    assert (
        client.post(wrong_without_slash, data="{}", content_type="application/json").status_code
        == 404
    )


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=[r"^webhooks/"])
def test_no_https_redirect_on_webhook_paths(sender: Sender, provider: str, client, handlers):
    assert sender.post().status_code == 200
    assert client.get("/healthz").status_code == 301  # everything else is redirected


def test_csrf_is_not_required(sender: Sender, provider: str, handlers) -> None:
    sender.client.handler.enforce_csrf_checks = True
    assert sender.post().status_code == 200


def test_unsubscribed_type_is_acknowledged_and_ignored(sender: Sender, provider: str) -> None:
    event_type = "customer.created" if provider == "stripe" else "routing_form_submission.created"
    data = default_event(provider, event_type)
    if provider == "calendly":
        data["event"] = event_type
    response = sender.post(data)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert WebhookEvent.objects.count() == 0


def test_rejection_logs_the_reason_never_the_body(sender: Sender, provider: str, caplog):
    data = default_event(provider)
    data["marker"] = "body-content-that-must-not-be-logged"
    caplog.set_level(logging.INFO)
    sender.post(data, secret=WRONG_SECRET)
    messages = [r for r in caplog.records if r.getMessage() == "webhooks.rejected"]
    assert messages
    assert messages[0].reason == "signature_mismatch"
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "body-content-that-must-not-be-logged" not in logged
    token = endpoint(provider).split("/")[3]
    assert token not in logged


@override_settings(WEBHOOK_REJECTION_AUDIT_LIMIT=3)
def test_rejections_are_counted_per_reason_and_audit_is_bounded(sender: Sender, provider: str):
    for _ in range(5):
        sender.post(secret=WRONG_SECRET)
    sender.post(timestamp=int(time.time()) - 1000)
    counts = dict(WebhookRejection.objects.values_list("reason", "count"))
    assert counts == {"signature_mismatch": 5, "timestamp_stale": 1}
    audited = AuditEntry.objects.filter(action="webhooks.delivery.rejected")
    assert audited.count() == 4  # three of the five, and the stale one


@pytest.mark.parametrize(
    "case", ["valid", "stale", "other_secret", "tampered", "two_signatures", "no_v1"]
)
def test_stripe_verdicts_match_construct_event(stripe_sender: Sender, handlers, case) -> None:
    """The endpoint checks with verify_header (no StripeObject built): it must accept
    and refuse exactly what stripe.Webhook.construct_event accepts and refuses."""
    import stripe

    secret = current_secret("stripe")
    body = json.dumps(default_event("stripe"))
    now = int(time.time())
    header = {
        "valid": sign(secret, body, now),
        "stale": sign(secret, body, now - 400),
        "other_secret": sign(WRONG_SECRET, body, now),
        "tampered": sign(secret, body + " ", now),
        "two_signatures": sign(WRONG_SECRET, body, now) + "," + sign(secret, body).split(",")[1],
        "no_v1": f"t={now},v0=abc",
    }[case]
    try:
        stripe.Webhook.construct_event(body, header, secret, tolerance=300)
        expected = 200
    except stripe.SignatureVerificationError:
        expected = 400
    assert stripe_sender.post(body=body, header=header).status_code == expected
