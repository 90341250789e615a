"""A booking intent is bound to its client's email: a copied link books nobody in.

Client A's "Choose a time" link carries A's signed intent in ``utm_content``. Anyone
who gets the link (a forwarded email, a shared screen) can open Calendly's page with
it; a booking made there under another address must not be tied to A, and no payment
link goes out: that address is only offered to claim the booking for itself (and pay).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from bookings.models import Booking
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.calendly_sandbox.models import Invitee
from tests.bookings.world import World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


def _book_with(world: World, *, email: str, name: str) -> Invitee:
    """The client consents; someone else books on Calendly with the client's link."""
    consent = world.browser(world.client_user).post(
        f"/sessions/{world.event_type.pk}/",
        {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
    )
    target = urlsplit(consent["Location"])
    prefill = dict(parse_qsl(target.query))
    start = next(
        s
        for s in calendly_sandbox.open_slots(world.sandbox_type)
        if s >= timezone.now() + timedelta(hours=72)
    )
    same = email.lower() == world.client_user.email.lower()
    other = world.browser(world.client_user if same else world.person(email, name))
    picked = other.post(
        target.path,
        {
            "start": start.isoformat(),
            "name": name,
            "email": email,
            "timezone": "Europe/Berlin",
            "answer": "-",
            "utm_source": prefill["utm_source"],
            "utm_content": prefill["utm_content"],
        },
    )
    assert picked.status_code == 302
    return Invitee.objects.latest("id")


def test_a_copied_intent_does_not_link_another_persons_booking(world: World) -> None:
    invitee = _book_with(world, email="mallory@elsewhere.example", name="Mallory")
    mail.outbox.clear()

    world.deliver("invitee.created")
    world.retry_waiting()

    booking = Booking.objects.for_invitee(invitee.uuid).get()
    assert booking.client is None
    assert booking.needs_review
    assert "email other than the client" in booking.review_reason
    assert not booking.payments.exists()
    assert not [m for m in mail.outbox if "Finish paying" in m.subject]
    assert not [m for m in mail.outbox if world.client_user.email in m.to]
    # The address that booked may claim it for itself, as any booking made without
    # Slotpay (bookings.claims): with its own account, paying itself.
    assert [m.subject for m in mail.outbox if "mallory@elsewhere.example" in m.to] == [
        "Claim and pay for your booking with Ada's Studio"
    ]


def test_the_clients_own_booking_with_their_email_in_another_case_links(world: World) -> None:
    invitee = _book_with(world, email="CLARA@Client.Example", name="Clara Client")

    world.deliver("invitee.created")
    world.retry_waiting()

    booking = Booking.objects.for_invitee(invitee.uuid).get()
    assert (booking.client, booking.needs_review) == (world.client_user, False)
