"""The provider registry: webhooks knows no provider, the provider apps register theirs.

A provider registered here the way ``payments`` and ``bookings`` register Stripe and
Calendly gets the same endpoint, generic checks, refusals and inbox as they do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from tests.webhooks.conftest import Recorder, endpoint, sign
from tests.webhooks.test_verification import assert_refused
from webhooks.models import WebhookEvent, WebhookRejection
from webhooks.providers import WebhookProvider, providers, setting
from webhooks.registry import registry
from webhooks.schemas import Envelope, Match, validate
from webhooks.verification import Rejected, check_timestamp, signature_parts

KEY = "example-signing-key"  # pragma: allowlist secret
TOKEN = "example-path-token-0123456789"


def verify_example(body: bytes, header: str | None, keys: Sequence[str]) -> None:
    timestamp, signatures = signature_parts(header)
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(k.encode(), signed, hashlib.sha256).hexdigest() for k in keys]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise Rejected("signature_mismatch")
    check_timestamp(timestamp, now=time.time())


def example_envelope(data: Any) -> Envelope:
    validate({"id": Match(r"ex_[a-z0-9]{1,32}"), "kind": Match(r"[a-z]+\.[a-z]+")}, data)
    if data["kind"] == "test.refused":
        raise Rejected("example_refused")
    return Envelope(event_id=data["id"], event_type=data["kind"])


EXAMPLE = WebhookProvider(
    name="example",
    signature_header="Example-Signature",
    secrets=setting("EXAMPLE_WEBHOOK_KEYS"),
    path_token=setting("EXAMPLE_WEBHOOK_PATH_TOKEN"),
    ip_allowlist=setting("EXAMPLE_WEBHOOK_IP_ALLOWLIST"),
    verify=verify_example,
    envelope=example_envelope,
)


@dataclass
class ExampleSender:
    client: Client
    capture: Any

    def post(
        self,
        data: dict[str, Any],
        *,
        key: str = KEY,
        token: str = TOKEN,
        content_type: str = "application/json",
    ) -> Any:
        body = json.dumps(data)
        with self.capture(execute=True):
            return self.client.post(
                f"/webhooks/example/{token}/",
                data=body,
                content_type=content_type,
                HTTP_EXAMPLE_SIGNATURE=sign(key, body),
            )


@pytest.fixture
def handled(db: None) -> Iterator[Recorder]:
    """The example provider registered, and a recorder handling ``thing.happened``."""
    recorder = Recorder()
    providers.register(EXAMPLE)
    try:
        with (
            override_settings(
                EXAMPLE_WEBHOOK_KEYS=[KEY],
                EXAMPLE_WEBHOOK_PATH_TOKEN=TOKEN,
                EXAMPLE_WEBHOOK_IP_ALLOWLIST=[],
            ),
            registry.replaced({("example", "thing.happened"): recorder}),
        ):
            yield recorder
    finally:
        providers.unregister("example")


@pytest.fixture
def example(
    handled: Recorder, client: Client, django_capture_on_commit_callbacks: Any
) -> ExampleSender:
    return ExampleSender(client, django_capture_on_commit_callbacks)


def test_the_provider_apps_register_stripe_and_calendly() -> None:
    assert providers.names() == ["calendly", "stripe"]
    assert providers["stripe"].signature_header == "Stripe-Signature"
    assert providers["calendly"].signature_header == "Calendly-Webhook-Signature"


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unknown_provider_is_an_ordinary_404(client: Client, method: str) -> None:
    """Even with a real provider's token: nothing tells a prober which names exist."""
    path = endpoint("stripe").replace("/stripe/", "/paypal/")
    unknown = getattr(client, method)(path)
    page = getattr(client, method)("/no-such-page/")
    assert unknown.status_code == page.status_code == 404
    assert unknown.content.replace(unknown["X-Request-ID"].encode(), b"") == page.content.replace(
        page["X-Request-ID"].encode(), b""
    )
    assert not WebhookRejection.objects.exists()


def test_a_registered_provider_is_verified_stored_and_handled(
    example: ExampleSender, handled: Recorder
) -> None:
    data = {"id": "ex_1", "kind": "thing.happened"}
    assert example.post(data).json() == {"status": "stored"}
    assert example.post(data).json() == {"status": "duplicate"}
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_id, event.status) == ("example", "ex_1", "processed")
    assert event.headers["Example-Signature"].endswith(",v1=[redacted]")
    assert handled.ids() == ["ex_1"]


def test_a_registered_provider_gets_the_generic_refusals_and_its_own(
    example: ExampleSender, handled: Recorder
) -> None:
    data = {"id": "ex_2", "kind": "thing.happened"}
    assert_refused(example.post(data, key="not-the-key"), "example", "signature_mismatch")
    plain = example.post(data, content_type="text/plain")
    assert_refused(plain, "example", "unsupported_content_type")
    assert_refused(example.post({"kind": "thing.happened"}), "example", "schema_invalid")
    own = example.post({"id": "ex_3", "kind": "test.refused"})
    assert_refused(own, "example", "example_refused")
    assert handled.calls == []


def test_a_providers_settings_are_read_at_each_delivery(example: ExampleSender) -> None:
    data = {"id": "ex_4", "kind": "thing.happened"}
    with override_settings(EXAMPLE_WEBHOOK_PATH_TOKEN="another-path-token-0123456789"):
        assert example.post(data).status_code == 404
    with override_settings(EXAMPLE_WEBHOOK_PATH_TOKEN=""):  # an empty token: no endpoint
        assert example.post(data, token="x").status_code == 404
    with override_settings(EXAMPLE_WEBHOOK_KEYS=["rotated-in", KEY]):
        assert example.post(data, key="rotated-in").status_code == 200
    assert not WebhookRejection.objects.exists()


def test_a_name_is_registered_once() -> None:
    stripe = providers["stripe"]
    providers.register(stripe)  # AppConfig.ready() running twice changes nothing
    with pytest.raises(ImproperlyConfigured, match="already registered"):
        providers.register(dataclasses.replace(stripe, signature_header="X-Forged"))
    assert providers["stripe"] is stripe
    for name in ("", "Stripe", "a/b", "x" * 17):
        with pytest.raises(ImproperlyConfigured, match="not a webhook provider name"):
            providers.register(dataclasses.replace(EXAMPLE, name=name))


def test_webhooks_and_audit_import_no_domain_app() -> None:
    """The import-linter contract in pyproject.toml, here too so that the suite fails
    as soon as webhooks (or audit) imports accounts, payments, bookings or sandbox."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [lint_imports, "--contract", "webhooks-audit-know-no-domain", "--no-cache", "--no-logo"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
