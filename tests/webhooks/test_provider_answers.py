"""What a handler's provider call answers decides between ignoring and retrying.

Signed events go through the real endpoint to the real handlers, which ask the
Stripe and Calendly sandboxes over HTTP (``site``: everything points at the live
server). An object the provider does not know (404) is a permanent answer: the event
ends ``ignored`` with the reason, audited, without a traceback or a retry. Our own
credentials refused (401, 403), a rate limit (429) or a provider error (5xx) is not:
the event fails and is retried, and finally dead-lettered (an alert).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from sandbox.stripe_sandbox.models import RestrictedKey
from tests.conftest import LocalServer, QuietHandler, Site
from tests.webhooks.conftest import Sender, calendly_event, stripe_event
from webhooks import services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)
Status = WebhookEvent.Status


@pytest.fixture
def stripe(site: Site, client, django_capture_on_commit_callbacks) -> Sender:
    return Sender("stripe", client, django_capture_on_commit_callbacks)


@pytest.fixture
def calendly(site: Site, client, django_capture_on_commit_callbacks) -> Sender:
    return Sender("calendly", client, django_capture_on_commit_callbacks)


def unknown(prefix: str) -> str:
    return f"{prefix}_unknown{uuid.uuid4().hex[:16]}"


def event_about(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    data = stripe_event(event_type)
    data["data"]["object"] = obj
    return data


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def assert_ignored_for(event: WebhookEvent, *, error_class: str, reason: str) -> None:
    assert (event.status, event.attempts) == (Status.IGNORED, 1)
    assert event.processed_at is not None
    assert event.last_error.startswith(f"{error_class}: ")
    assert reason in event.last_error
    entry = AuditEntry.objects.filter(action="webhooks.event.ignored").latest("sequence")
    assert entry.data["event_id"] == event.event_id
    assert entry.data["reason"] == event.last_error
    # Final: neither a queued retry nor the sweeper runs it again.
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert services.event_process(pk=event.pk) is None
    assert services.events_sweep() == 0


# --- permanent: the provider does not know the object -----------------------------------------


@pytest.mark.parametrize(
    ("event_type", "obj", "missing"),
    [
        (
            "checkout.session.completed",
            {"id": unknown("cs_test"), "object": "checkout.session"},
            "checkout.session",
        ),
        ("charge.refunded", {"id": unknown("ch"), "object": "charge"}, "charge"),
        ("charge.dispute.created", {"id": unknown("dp"), "object": "dispute"}, "dispute"),
    ],
    ids=["session", "charge", "dispute"],
)
def test_a_stripe_object_stripe_does_not_know_is_ignored_not_retried(
    stripe: Sender, caplog, event_type: str, obj: dict[str, Any], missing: str
) -> None:
    caplog.set_level(logging.INFO)
    assert stripe.post(event_about(event_type, obj)).json() == {"status": "stored"}

    event = WebhookEvent.objects.get()
    assert_ignored_for(event, error_class="NotFound", reason=f"No such {missing}: '{obj['id']}'")
    assert "code=resource_missing" in event.last_error
    assert errors_logged(caplog) == []
    [refused] = [r for r in caplog.records if r.getMessage() == "webhooks.provider_refused"]
    assert refused.levelno == logging.WARNING


def test_a_calendly_invitee_calendly_does_not_know_is_ignored(calendly: Sender, caplog) -> None:
    caplog.set_level(logging.INFO)
    data = calendly_event("invitee.created", invitee=uuid.uuid4().hex[:16].upper())
    assert calendly.post(data).json() == {"status": "stored"}

    event = WebhookEvent.objects.get()
    assert_ignored_for(event, error_class="NotFound", reason="(404)")
    assert errors_logged(caplog) == []


# --- not permanent: our credentials, or the provider is struggling -----------------------------


def assert_failed_and_retrying(event: WebhookEvent, *, error_class: str) -> None:
    assert (event.status, event.attempts) == (Status.FAILED, 1)
    assert event.last_error.startswith(f"{error_class}: ")
    assert event.next_attempt_at > timezone.now()
    assert not AuditEntry.objects.filter(action="webhooks.event.ignored").exists()


def test_a_stripe_key_stripe_refuses_fails_and_retries(stripe: Sender, settings, caplog) -> None:
    """401 is our misconfiguration: ignoring would drop every event until it is fixed.
    (The sandbox reads STRIPE_API_KEY too, so the unknown key is a restricted one.)"""
    settings.STRIPE_API_KEY = "rk_test_FAKE-not-a-key-the-sandbox-knows"  # pragma: allowlist secret
    stripe.post(
        event_about("checkout.session.completed", {"id": unknown("cs_test"), "object": "s"})
    )
    assert_failed_and_retrying(WebhookEvent.objects.get(), error_class="AuthenticationFailed")
    assert any(r.getMessage() == "webhooks.handler_failed" for r in errors_logged(caplog))


def test_a_restricted_key_without_the_permission_fails_and_retries(stripe: Sender, settings):
    key = "rk_test_FAKE-no-checkout-sessions"  # pragma: allowlist secret
    RestrictedKey.objects.create(name="charges only", key=key, permissions={"charges": "read"})
    settings.STRIPE_API_KEY = key
    stripe.post(
        event_about("checkout.session.completed", {"id": unknown("cs_test"), "object": "s"})
    )
    assert_failed_and_retrying(WebhookEvent.objects.get(), error_class="PermissionDenied")


class StrugglingStripe(LocalServer):
    """An HTTP server that answers every request as Stripe does when it cannot serve it:
    a rate limit (429) or an error with ``Stripe-Should-Retry: false`` (so stripe-python
    gives up at once instead of sleeping between its own retries)."""

    def __init__(self, status: int) -> None:
        error = {
            429: {"type": "rate_limit_error", "message": "Too many requests."},
            500: {"type": "api_error", "message": "Something went wrong on Stripe's end."},
        }[status]
        body = json.dumps({"error": error}).encode()

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Stripe-Should-Retry", "false")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815 (the name BaseHTTPRequestHandler looks up)

        super().__init__(Handler)


@pytest.fixture(params=[429, 500])
def struggling_stripe(request: pytest.FixtureRequest, settings) -> Iterator[StrugglingStripe]:
    server = StrugglingStripe(request.param)
    settings.STRIPE_API_BASE = server.url
    yield server
    server.close()


def test_a_rate_limit_or_a_stripe_error_fails_and_retries(
    stripe: Sender, struggling_stripe: StrugglingStripe, settings
) -> None:
    obj = {"id": unknown("cs_test"), "object": "checkout.session"}
    stripe.post(event_about("checkout.session.completed", obj))
    event = WebhookEvent.objects.get()
    assert_failed_and_retrying(event, error_class="ProviderUnavailable")

    # Still failing at the last attempt: a dead letter, not an ignored event.
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert services.event_process(pk=event.pk) == Status.DEAD
