"""The PCI cases the project's seed names, under those names, end to end.

docs/pci-scope.md sets out the posture they hold Slotpay to: PCI DSS SAQ A (every card
is typed on Stripe's hosted Checkout, none on a page of ours), and a payment known to
us by Stripe's references only, with the card's brand and last four digits. The seed's
"card data handling" case is tests/test_seed_cases.py::test_card_data_handling; the
production headers' score is tests/config/test_observatory.py.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import urlsplit

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import resolve

from audit import purges
from audit.models import AuditEntry
from audit.services import verify_chain
from config import checks
from payments.models import Payment
from payments.retention import PAYMENT_RETENTION
from tests.bookings.world import World, world
from tests.test_seed_cases import _text_columns
from webhooks.models import WebhookEvent

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4242 4242 4242 4242"
# A field a card would be typed into: by name or by the browser's autofill hint.
CARD_FIELD = re.compile(
    r"<input[^>]*(?:autocomplete=\"cc-|name=\"(?:card|cardnumber|cc|cvc|cvv|exp))", re.I
)


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


def _paid(world: World):
    slot = world.book()
    assert world.pay(slot, CARD).status_code == 303
    world.deliver()
    world.retry_waiting()
    return slot


def test_pci_compliance_configurations(world: World, settings) -> None:
    """SAQ A holds: the pages a client passes through on the way to paying carry no
    card field, no frame and no script but our own files, under a policy that allows
    no other script, frames us nowhere and lets forms go only to us and Checkout; the
    card is typed on the provider's hosted page, which is not ours. And production
    refuses each setting that would widen the scope or weaken it: a test-mode or an
    unrestricted Stripe key, the sandbox, DEBUG, HSTS under a year."""
    slot = world.book()
    browser = world.browser(world.client_user)
    for path in (
        f"/sessions/{world.event_type.pk}/",
        f"/bookings/{slot.booking.reference}/",
        "/bookings/",
    ):
        answer = browser.get(path)
        assert answer.status_code == 200, path
        page = answer.content.decode()
        assert not CARD_FIELD.search(page), path
        assert "<iframe" not in page.lower()
        assert "stripe.com" not in page.lower().replace("checkout.stripe.com", "")
        sources = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page)
        assert all(src.startswith(settings.STATIC_URL) for src in sources), sources
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
        policy = _directives(answer["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert set(policy["form-action"]) == {"'self'", *settings.CHECKOUT_ORIGINS}
        assert "frame-src" not in policy  # frames fall back to default-src: ours only

    # Where the card is typed: Checkout's hosted page (here the sandbox's stand-in for
    # it, which production never mounts), reached by leaving our pages.
    checkout = urlsplit(world.checkout_url(slot))
    assert f"{checkout.scheme}://{checkout.netloc}{checkout.path}".startswith(
        settings.STRIPE_API_BASE
    )
    assert resolve(checkout.path).namespaces[0] == "sandbox"

    settings.ENVIRONMENT, settings.DEBUG, settings.SANDBOX = "production", False, False
    settings.STRIPE_WEBHOOK_SECRETS = [f"whsec_{secrets.token_hex(16)}"]
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = 31_536_000, True
    scoped = ("slotpay.E001", "slotpay.E006", "slotpay.E008", "slotpay.E009", "slotpay.E010")

    def refused() -> list[str]:
        found = [*checks.check_providers(), *checks.check_production_settings()]
        return sorted(m.id for m in found if m.id in scoped)

    settings.STRIPE_API_KEY = "rk_" + "live_" + secrets.token_hex(12)  # pragma: allowlist secret
    assert refused() == []  # the production posture: a restricted live key
    for key, expected in (
        ("sk_test_" + secrets.token_hex(12), "slotpay.E009"),
        ("rk_test_" + secrets.token_hex(12), "slotpay.E009"),
        ("sk_" + "live_" + secrets.token_hex(12), "slotpay.E010"),
    ):
        settings.STRIPE_API_KEY = key
        assert refused() == [expected]
    restricted = "rk_" + "live_" + secrets.token_hex(12)  # pragma: allowlist secret
    settings.STRIPE_API_KEY = restricted
    for name, value, expected in (
        ("SANDBOX", True, "slotpay.E008"),
        ("DEBUG", True, "slotpay.E001"),
        ("SECURE_HSTS_SECONDS", 3600, "slotpay.E006"),
    ):
        before = getattr(settings, name)
        setattr(settings, name, value)
        assert refused() == [expected], name
        setattr(settings, name, before)


def test_secure_storage_of_payment_references(world: World, settings) -> None:
    """A payment is known to us by Stripe's references (Checkout Session,
    PaymentIntent, Charge, Customer) and the card's brand and last four digits, never
    more. Each reference is stored once (the database refuses a second row with it),
    kept the seven years of rule `payments.records`, and every change of the payment
    is audited in the transaction stream, whose chain verifies. The provider's own copy
    (the webhook payload, which carries the references with the payer's name and
    email) is encrypted at rest; and no key that could act on the references (the
    Stripe API key, the webhook secrets, the encryption keys) is in any table."""
    slot = _paid(world)
    payment = Payment.objects.get(booking=slot.booking)

    assert re.fullmatch(r"cs_test_\w+", payment.checkout_session_id)
    assert re.fullmatch(r"pi_\w+", payment.payment_intent_id)
    assert re.fullmatch(r"ch_\w+", payment.charge_id)
    assert re.fullmatch(r"cus_\w+", payment.customer_id)
    assert (payment.status, payment.card_brand, payment.card_last4) == ("paid", "visa", "4242")

    # Stored once: the same reference cannot be recorded for a second payment.
    for reference in ("checkout_session_id", "payment_intent_id"):
        other = {
            "checkout_session_id": f"cs_test_{secrets.token_hex(8)}",
            "payment_intent_id": f"pi_{secrets.token_hex(8)}",
            reference: getattr(payment, reference),
        }
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.create(booking=payment.booking, amount=1, currency="eur", **other)

    # Kept as long as the law asks of transaction records, by a rule that runs hourly.
    [rule] = [rule for rule in purges.rules() if rule.name == "payments.records"]
    assert rule.period == PAYMENT_RETENTION
    assert PAYMENT_RETENTION.days == 7 * 365

    # Every change of the payment is in the transaction stream, without card data.
    entries = AuditEntry.objects.filter(target_type="payments.payment", target_id=str(payment.pk))
    assert entries.exists()
    assert set(entries.values_list("category", flat=True)) == {"transaction"}
    for data in entries.values_list("data", flat=True):
        assert CARD.replace(" ", "") not in json.dumps(data)
    assert verify_chain().ok

    # The provider's copy is encrypted at rest, and readable only through the model.
    events = WebhookEvent.objects.filter(provider="stripe")
    assert any(payment.checkout_session_id in (event.payload or "") for event in events)
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM webhooks_webhookevent WHERE provider = 'stripe'")
        raw = [row[0] or "" for row in cursor.fetchall()]
    assert raw
    for stored in raw:
        assert payment.checkout_session_id not in stored
        assert "clara@client.example" not in stored

    # No secret that could act on these references is stored anywhere of ours.
    secrets_held = [
        settings.STRIPE_API_KEY,
        *settings.STRIPE_WEBHOOK_SECRETS,
        *settings.FIELD_ENCRYPTION_KEY,
        settings.SECRET_KEY,
    ]
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            for secret in secrets_held:
                cursor.execute(
                    f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE %s',  # noqa: S608 (our own table names)
                    [f"%{secret}%"],
                )
                assert cursor.fetchone()[0] == 0, f"{table}.{column} holds a key"
