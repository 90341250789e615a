"""Where money is shown to the client, it is what Stripe charged: with Stripe Tax on,
the price plus the tax Checkout added. Before paying, the price says tax comes on top
(only when the event type has automatic tax); once paid, the booking's pages and the
confirmation email give the total with its tax. Through our pages, the sandbox's
Checkout and the real webhook endpoint."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest
from django.core import mail
from django.urls import reverse

from bookings.models import EventType
from tests.bookings.world import PRICE, Slot, World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4242 4242 4242 4242"


class Taxed(NamedTuple):
    currency: str
    price: int
    shown_price: str
    shown_total: str  # the sandbox's Stripe Tax: 19 % on top
    shown_tax: str


CASES = [
    Taxed("eur", 8000, "€80.00", "€95.20", "€15.20"),
    # Zero-decimal: ¥5,000 is 5000 minor units, and Stripe charged ¥5,950.
    Taxed("jpy", 5000, "¥5,000", "¥5,950", "¥950"),
]


def summary_amount(page: bytes, kind: str) -> str | None:
    """An amount row of the booking's summary (_summary.html: ``price``, ``paid``), as
    the client reads it; None when the page has no such row."""
    found = re.search(rf'<dd[^>]*data-amount="{kind}">([^<]*)</dd>'.encode(), page)
    return found.group(1).decode() if found else None


def client_pages(world: World, slot: Slot) -> dict[str, bytes]:
    browser = world.browser(world.client_user)
    reference = slot.booking.reference
    return {
        "detail": browser.get(reverse("bookings:detail", args=[reference])).content,
        "mine": browser.get(reverse("bookings:mine")).content,
        "paid": browser.get(
            reverse("bookings:paid", args=[reference]),
            {"session_id": slot.payment.checkout_session_id, "checked": "1"},
        ).content,
    }


def paid(world: World, slot: Slot) -> None:
    assert world.pay(slot, CARD).status_code == 303
    world.deliver()
    world.retry_waiting()
    assert (slot.booking.status, slot.payment.status) == ("confirmed", "paid")


def confirmation() -> str:
    [email] = [m for m in mail.outbox if "is confirmed" in m.subject]
    return email.body


@pytest.mark.parametrize("case", CASES, ids=[case.currency for case in CASES])
def test_a_taxed_booking_shows_what_was_charged(world: World, case: Taxed) -> None:
    EventType.objects.filter(pk=world.event_type.pk).update(
        currency=case.currency, price_amount=case.price, automatic_tax=True
    )
    offer = world.browser(world.client_user).get(f"/sessions/{world.event_type.pk}/")
    assert f"{case.shown_price}</strong> plus tax where applicable".encode() in offer.content
    assert f"pay {case.shown_price} plus tax where applicable".encode() in offer.content

    slot = world.book(come_back=False)  # left before Checkout: we email the link
    world.deliver("invitee.created")
    [link] = [m for m in mail.outbox if m.subject.startswith("Finish paying")]
    assert f"Pay {case.shown_price} plus tax where applicable here: http" in link.body
    before = client_pages(world, slot)
    for name in ("detail", "mine"):
        assert summary_amount(before[name], "price") == (
            f"{case.shown_price} plus tax where applicable"
        )
        assert summary_amount(before[name], "paid") is None

    paid(world, slot)
    for name, page in client_pages(world, slot).items():
        assert summary_amount(page, "price") == case.shown_price, name
        assert summary_amount(page, "paid") == (
            f"{case.shown_total} (incl. tax {case.shown_tax})"
        ), name
    body = confirmation()
    assert f"Amount paid: {case.shown_total} (incl. tax {case.shown_tax})" in body
    assert f"Amount paid: {case.shown_price}" not in body


def test_an_untaxed_booking_shows_its_price_alone(world: World) -> None:
    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    [link] = [m for m in mail.outbox if m.subject.startswith("Finish paying")]
    assert "Pay €80.00 here: http" in link.body
    before = client_pages(world, slot)["detail"]
    assert (summary_amount(before, "price"), summary_amount(before, "paid")) == ("€80.00", None)

    paid(world, slot)
    assert (slot.payment.amount, slot.payment.tax_amount) == (PRICE, 0)
    for name, page in client_pages(world, slot).items():
        assert (summary_amount(page, "price"), summary_amount(page, "paid")) == (
            "€80.00",
            "€80.00",
        ), name
        assert b"tax" not in page, name
    body = confirmation()
    assert "Amount paid: €80.00\n" in body
    assert "tax" not in body
