"""The compliance cases the project's seed names, under those names, end to end.

Each drives our pages, the back-office and the providers' sandboxes over real HTTP
(tests/bookings/world.py): refunds under the agreed policy and four eyes beyond it,
Stripe's tax and receipt, and rotating and revoking every key we hold. The behaviours
are tested in detail in the apps' folders; these say in one place that they hold.
"""

from __future__ import annotations

import io
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import stripe
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEntry
from audit.services import verify_chain
from bookings.calendly import CalendlyClient
from bookings.models import Booking, EventType, PolicyConsent
from core.encryption import UndecryptableValueError, key_fingerprint
from payments import stripe_gateway
from payments.models import Payment, RefundApproval
from sandbox import delivery
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.models import Delivery
from sandbox.stripe_sandbox.models import RestrictedKey
from tests.bookings.world import CALENDLY_EVENTS, PRICE, Slot, World, world
from tests.conftest import PASSWORD, step_up
from tests.payments.test_approvals import decide
from tests.payments.test_backoffice_refunds import shown_messages, submit
from webhooks.models import WebhookEvent, WebhookRejection

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4242 4242 4242 4242"
HOUR = timedelta(hours=1)


def _finance(email: str) -> Client:
    """A member of the Finance group, signed in and stepped up, as refunds need."""
    user = User.objects.create_user(email=email, password=PASSWORD, name="Fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    browser = Client()
    browser.force_login(user)
    step_up(browser)
    return browser


def _paid(world: World, client: User | None = None, *, hours_ahead: float = 72) -> Slot:
    slot = world.book(client, hours_ahead=hours_ahead)
    paid = world.pay(slot, CARD)
    assert paid.status_code == 303, paid.content[:300]
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == Booking.Status.CONFIRMED
    return slot


# --- Refund policy --------------------------------------------------------------------------


def _three_slots(world: World) -> tuple[datetime, datetime, datetime]:
    """Three open slots on the sandbox's calendar, at least four hours apart."""
    now = timezone.now()
    slots = [s for s in calendly_sandbox.open_slots(world.sandbox_type) if s > now + 2 * HOUR]
    first = slots[0]
    second = next(s for s in slots if s >= first + 4 * HOUR)
    third = next(s for s in slots if s >= second + 4 * HOUR)
    return first, second, third


def test_refund_policy_enforcement(world: World) -> None:
    """Cancelled by the client inside each window of the policy they agreed to, a
    booking refunds what its page promised: in full, half, nothing. A refund by staff
    beyond the policy waits for a second Finance member, and only then reaches Stripe.

    The sandbox's calendar opens on weekdays only, so the builder's tiers are set
    around three open slots: each falls in its own window whatever day this runs."""
    first, second, third = _three_slots(world)
    now = timezone.now()
    hours = [int((start - now) / HOUR) - 1 for start in (second, third)]
    tiers = [
        {"min_notice_hours": hours[1], "percent": 100},
        {"min_notice_hours": hours[0], "percent": 50},
        {"min_notice_hours": 0, "percent": 0},
    ]
    assert world.event_type.set_refund_policy(tiers, actor=world.builder_user)
    world.event_type.refresh_from_db()
    cases = []  # (client, slot, refund promised and due, payment status after)
    for n, (start, expected, status) in enumerate(
        [
            (third, PRICE, "refunded"),
            (second, PRICE // 2, "partially_refunded"),
            (first, 0, "paid"),
        ]
    ):
        client = world.person(f"client{n}@client.example", f"Client {n}")
        slot = _paid(world, client, hours_ahead=(start - timezone.now()) / HOUR - 0.01)
        assert slot.booking.start_at == start
        # What the client agreed to on our page, before Checkout.
        assert PolicyConsent.objects.get(booking=slot.booking).policy == tiers
        cases.append((client, slot, expected, status))

    for client, slot, expected, _ in cases:
        browser = world.browser(client)
        page = browser.get(f"/bookings/{slot.booking.reference}/").content.decode()
        promised = re.search(r'class="refund-amount">([^<]+)<', page)
        assert promised is not None, page
        assert promised.group(1) == (f"€{expected / 100:.2f}" if expected else "nothing")
        assert browser.post(f"/bookings/{slot.booking.reference}/cancel/").status_code == 302
    world.settle_everything()

    for _, slot, expected, status in cases:
        assert world.state(slot) == {
            "booking": "canceled",
            "payments": [status],
            "refunds": [(expected, "succeeded", False)] if expected else [],
        }
    assert world.dead_or_failed() == []

    # Staff give back the whole of the no-refund booking: beyond the policy, so it
    # waits for a second Finance member, and nothing reaches Stripe meanwhile.
    late = cases[2][1]
    answer = submit(_finance("fin-one@slotpay.example"), late.booking, "80.00", "Goodwill")
    assert "waits for another Finance member's approval" in shown_messages(answer)[0]
    approval = RefundApproval.objects.get()
    assert (approval.amount, approval.beyond_policy, approval.status) == (PRICE, True, "pending")
    assert world.state(late)["refunds"] == []
    charge = stripe_gateway.retrieve_charge(late.payment.charge_id)
    assert charge.amount_refunded == 0
    requested = AuditEntry.objects.get(action="payments.refund.approval_requested")
    assert (requested.data["beyond_policy"], requested.data["over_threshold"]) == (True, False)

    approved = decide(_finance("fin-two@slotpay.example"), "approve_selected", approval)
    assert "Refunded €80.00" in shown_messages(approved)[0]
    world.settle_everything()
    assert world.state(late)["refunds"] == [(PRICE, "succeeded", False)]
    assert stripe_gateway.retrieve_charge(late.payment.charge_id).amount_refunded == PRICE
    assert AuditEntry.objects.filter(action="payments.refund.approved").count() == 1


# --- Tax ------------------------------------------------------------------------------------


class Taxed(NamedTuple):
    currency: str
    price: int
    tax: int  # the sandbox's Stripe Tax: 19 % on top, rounded half up, in minor units
    # As Stripe's pages (Checkout, the receipt) write them, and as ours do.
    stripe_subtotal: str
    stripe_tax: str
    stripe_total: str
    shown_total: str


@pytest.mark.parametrize(
    "case",
    [
        Taxed("eur", 8000, 1520, "80.00 EUR", "15.20 EUR", "95.20 EUR", "€95.20"),
        # Zero-decimal: the minor unit is the yen.
        Taxed("jpy", 5000, 950, "5,000 JPY", "950 JPY", "5,950 JPY", "¥5,950"),
    ],
    ids=["eur", "jpy"],
)
def test_tax_calculation_accuracy(world: World, case: Taxed) -> None:
    """With Stripe Tax on, the tax Stripe computed on Checkout is what the payment
    records; subtotal + tax = total in minor units, for a zero-decimal and a
    two-decimal currency; the client sees the same figures on Checkout, on the
    receipt and in their bookings' API."""
    currency, price, tax = case.currency, case.price, case.tax
    EventType.objects.filter(pk=world.event_type.pk).update(
        currency=currency, price_amount=price, automatic_tax=True
    )
    slot = world.book()
    checkout = Client().get(urlsplit(world.checkout_url(slot)).path).content.decode()
    world.pay(slot, CARD)
    world.deliver()
    world.retry_waiting()

    payment = slot.payment
    session = stripe_gateway.retrieve_checkout_session(payment.checkout_session_id)
    assert (session.amount_tax, session.amount_total) == (tax, price + tax)
    assert (payment.status, payment.currency) == ("paid", currency)
    assert (slot.booking.price_amount, payment.tax_amount, payment.amount) == (
        price,
        tax,
        price + tax,
    )
    assert not payment.needs_review
    assert re.search(rf"Subtotal</td><td[^>]*>{case.stripe_subtotal}</td>", checkout)
    assert re.search(rf"Tax \(19 %\)</td><td[^>]*>{case.stripe_tax}</td>", checkout)
    assert re.search(rf"Total due</td><td[^>]*>{case.stripe_total}</td>", checkout)
    receipt = Client().get(urlsplit(payment.receipt_url).path).content.decode()
    assert f"Amount paid: <strong>{case.stripe_total}</strong>" in receipt
    assert re.search(rf"<td>Tax</td><td[^>]*>{case.stripe_tax}</td>", receipt)
    assert re.search(rf"</td><td[^>]*>{case.stripe_subtotal}</td>", receipt)
    api = world.browser(world.client_user).get(f"/api/v1/bookings/{slot.booking.reference}/")
    [shown] = api.json()["payments"]
    assert (shown["amount"], shown["tax_amount"], shown["display_amount"]) == (
        price + tax,
        tax,
        case.shown_total,
    )


# --- Receipts -------------------------------------------------------------------------------


def test_compliant_receipt_generation(world: World) -> None:
    """After paying, the client's booking links Stripe's receipt, which names the
    seller and what was sold, the amount and currency, the tax, the date, the payment
    reference and the card by brand and last four only; our confirmation email links
    it too and carries no card data."""
    EventType.objects.filter(pk=world.event_type.pk).update(automatic_tax=True)
    slot = _paid(world)
    payment = slot.payment

    assert payment.receipt_url.startswith(f"{world.site.url}/sandbox/stripe/receipts/")
    assert payment.charge_id
    assert payment.charge_id in payment.receipt_url
    page = world.browser(world.client_user).get(f"/bookings/{slot.booking.reference}/")
    assert f'href="{payment.receipt_url}"'.encode() in page.content
    answer = Client().get(urlsplit(payment.receipt_url).path)
    assert answer.status_code == 200
    receipt = answer.content.decode()

    # Who sold it (the merchant, as Stripe's receipts name the account), what, by whom.
    assert 'Receipt from <span class="sx-merchant">Slotpay Sandbox Ltd</span>' in receipt
    assert "Portfolio review (Ada&#x27;s Studio)" in receipt  # what was sold, and by whom
    assert "Amount paid: <strong>95.20 EUR</strong>" in receipt  # amount and currency
    assert re.search(r"<td>Tax</td><td[^>]*>15.20 EUR</td>", receipt)
    dated = re.search(r"</strong> on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", receipt)
    assert dated is not None
    paid_on = datetime.strptime(dated.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(paid_on - payment.paid_at) < timedelta(minutes=2)
    assert f"<code>{payment.charge_id}</code>" in receipt  # the payment's reference
    assert "Visa ending in 4242" in receipt
    digits = CARD.replace(" ", "")
    for text in (receipt, page.content.decode()):
        assert digits not in text
        assert CARD not in text
        assert not re.search(r"\b\d{13,19}\b", text)  # no full card number at all

    [email] = [m for m in mail.outbox if "is confirmed" in m.subject]
    assert email.to == ["clara@client.example"]
    assert f"Receipt: {payment.receipt_url}" in email.body
    assert "4242" not in email.body
    assert not re.search(r"\b(?:visa|mastercard|amex)\b", email.body, re.IGNORECASE)


# --- Keys -----------------------------------------------------------------------------------


def _delivered(item: Delivery) -> int | None:
    """Post ``item`` again now, signed with the secret it was made with; the status."""
    return delivery.attempt(item).status_code


def _rejections(provider: str) -> int:
    rows = WebhookRejection.objects.filter(provider=provider, reason="signature_mismatch")
    return rows.aggregate(total=Sum("count"))["total"] or 0


def _raw_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM accounts_user ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def _new_fernet_key() -> str:
    return Fernet.generate_key().decode()


def test_api_key_rotation_procedure(world: World, field_keys, settings) -> None:
    """Each key rotates with the old and the new valid together, then the old goes.

    Stripe's webhook secret: the new one first in STRIPE_WEBHOOK_SECRETS, the old
    kept, so events signed before and after the roll are both taken; then the old one
    removed and refused. Calendly's signing key: the same, the subscription remade
    with the new key. The field-encryption key: the new one first, the old kept, then
    ``rotate_field_encryption_key``; after it the new key alone reads everything."""
    old_stripe = settings.STRIPE_WEBHOOK_SECRETS[0]
    old_calendly = settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0]
    before = world.book()  # Calendly's invitee.created is signed with the old key
    world.pay(before, CARD)  # Stripe's checkout.session.completed, with the old secret
    signed_before = world.pending()
    assert {d.signing_secret for d in signed_before} == {old_stripe, old_calendly}

    # Both providers roll: ours accept the new key and the old one together.
    new_stripe = f"whsec_{secrets.token_hex(16)}"
    new_calendly = secrets.token_urlsafe(32)
    settings.STRIPE_WEBHOOK_SECRETS = [new_stripe, old_stripe]
    settings.CALENDLY_WEBHOOK_SIGNING_KEYS = [new_calendly, old_calendly]
    with CalendlyClient() as calendly:
        me = calendly.current_user()
        [old_subscription] = calendly.list_webhook_subscriptions(
            me.current_organization, "organization"
        )
        calendly.delete_webhook_subscription(old_subscription.uri)
        calendly.create_webhook_subscription(
            world.site.endpoint("calendly"),
            CALENDLY_EVENTS,
            organization=me.current_organization,
            scope="organization",
            signing_key=new_calendly,
        )
    after = world.book(world.person("bob@client.example", "Bob Client"))
    world.pay(after, CARD)
    signed_after = [d for d in world.pending() if d not in signed_before]
    assert {d.signing_secret for d in signed_after} == {new_stripe, new_calendly}

    world.deliver()
    world.retry_waiting()
    assert all(_last_status(d) == 200 for d in [*signed_before, *signed_after])
    assert (before.booking.status, after.booking.status) == ("confirmed", "confirmed")
    assert world.dead_or_failed() == []
    assert _rejections("stripe") == _rejections("calendly") == 0

    # The roll is over: the old keys go, and what they sign is refused.
    settings.STRIPE_WEBHOOK_SECRETS = [new_stripe]
    settings.CALENDLY_WEBHOOK_SIGNING_KEYS = [new_calendly]
    for item in signed_before:
        assert _delivered(item) == 400, item
    for item in signed_after:
        assert _delivered(item) == 200, item  # a duplicate, taken as such
    assert _rejections("stripe") >= 1
    assert _rejections("calendly") >= 1

    _rotate_the_field_encryption_key(field_keys, settings)
    # The booking flow works on under the new keys.
    third = _paid(world, world.person("cy@client.example", "Cy Client"))
    assert third.payment.status == Payment.Status.PAID
    assert world.dead_or_failed() == []


def _rotate_the_field_encryption_key(field_keys, settings) -> None:
    """The new key first, the old one kept: both decrypt; ``rotate_field_encryption_key``
    moves every row; then the new key alone reads everything, the audit trail's too."""
    names = sorted(User.objects.values_list("name", flat=True))
    old_field_key = settings.FIELD_ENCRYPTION_KEY[0]
    new_field_key = _new_fernet_key()
    field_keys(new_field_key, old_field_key)
    assert sorted(User.objects.values_list("name", flat=True)) == names
    raw_before = _raw_names()
    out = io.StringIO()
    call_command("rotate_field_encryption_key", stdout=out, stderr=io.StringIO())
    assert f"Rotation to key {key_fingerprint(new_field_key)} complete" in out.getvalue()
    assert all(a != b for a, b in zip(raw_before, _raw_names(), strict=True))
    field_keys(new_field_key)
    call_command("check")
    assert sorted(User.objects.values_list("name", flat=True)) == names
    assert verify_chain().ok
    rotated = AuditEntry.objects.get(action="accounts.field_encryption_key.rotated")
    assert rotated.data["key_fingerprint"] == key_fingerprint(new_field_key)


def _last_status(item: Delivery) -> int | None:
    last = item.attempt_log.order_by("-number").first()
    return last.status_code if last else None


def test_key_revocation_process(world: World, field_keys, settings) -> None:
    """A revoked key stops working at once: a delivery signed with a webhook secret
    we removed is refused with the generic answer and audited as a security event;
    a Stripe API key revoked on Stripe's side is refused with Stripe's authentication
    error; data under a removed field-encryption key cannot be read."""
    slot = world.book()
    world.pay(slot, CARD)
    signed = {d.provider: d for d in world.pending()}
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == Booking.Status.CONFIRMED

    # Emergency: both webhook secrets leaked; new ones replace them, no overlap.
    settings.STRIPE_WEBHOOK_SECRETS = [f"whsec_{secrets.token_hex(16)}"]
    settings.CALENDLY_WEBHOOK_SIGNING_KEYS = [secrets.token_urlsafe(32)]
    stored = WebhookEvent.objects.count()
    audited = AuditEntry.objects.filter(action="webhooks.delivery.rejected").count()
    for provider in ("stripe", "calendly"):
        attempt = delivery.attempt(signed[provider])
        assert attempt.status_code == 400, provider
        assert '"invalid_request"' in attempt.response_excerpt  # the generic answer
        assert _rejections(provider) == 1
    assert WebhookEvent.objects.count() == stored  # nothing stored, nothing processed
    rejected = AuditEntry.objects.filter(action="webhooks.delivery.rejected").order_by("sequence")
    assert rejected.count() == audited + 2
    for entry in rejected[audited:]:
        assert (entry.category, entry.data["reason"]) == ("security", "signature_mismatch")

    # Stripe API key: a restricted key in use is rolled, then the old one revoked.
    permissions = {
        "checkout_sessions": "write",
        "refunds": "write",
        "charges": "read",
        "payment_intents": "read",
        "customers": "write",
        "events": "read",
    }
    old_key = RestrictedKey.objects.create(
        name="slotpay", key=f"rk_test_{secrets.token_urlsafe(24)}", permissions=permissions
    )
    new_key = RestrictedKey.objects.create(
        name="slotpay (rolled)", key=f"rk_test_{secrets.token_urlsafe(24)}", permissions=permissions
    )
    session_id = slot.payment.checkout_session_id
    for key in (old_key, new_key):  # both valid while the roll lasts
        settings.STRIPE_API_KEY = key.key
        assert stripe_gateway.retrieve_checkout_session(session_id).id == session_id
    old_key.delete()  # revoked in Stripe's dashboard
    settings.STRIPE_API_KEY = new_key.key
    assert stripe_gateway.retrieve_checkout_session(session_id).id == session_id
    settings.STRIPE_API_KEY = old_key.key
    with pytest.raises(stripe_gateway.AuthenticationFailed) as refused:
        stripe_gateway.retrieve_checkout_session(session_id)
    assert refused.value.http_status == 401
    assert old_key.key not in str(refused.value)
    # stripe-python itself, with the revoked key: Stripe's authentication error.
    revoked = stripe.StripeClient(old_key.key, base_addresses={"api": settings.STRIPE_API_BASE})
    with pytest.raises(stripe.AuthenticationError, match="Invalid API Key provided"):
        revoked.v1.checkout.sessions.retrieve(session_id)
    settings.STRIPE_API_KEY = new_key.key

    # A field-encryption key removed before every row was moved off it: nothing
    # written under it can be read, and it fails loudly instead of showing ciphertext.
    field_keys(_new_fernet_key())
    with pytest.raises(UndecryptableValueError):
        User.objects.get(pk=world.client_user.pk).email  # noqa: B018 (the read is the test)
