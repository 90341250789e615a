"""Access requests: the export holds everything we and the providers hold on the
client, and nothing of another client of the same builder."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission

from accounts import dsr
from accounts.models import DataSubjectRequest, User
from audit.models import AuditEntry
from bookings.models import Booking
from bookings.services import complete_past
from tests.bookings.world import PRICE, Slot, World, world
from tests.conftest import PASSWORD
from tests.sandbox.stripe.helpers import pay

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_EMAIL = "otto@other.example"
OTHER_NAME = "Otto Other"


def paid_booking(world: World, user: User | None = None) -> Slot:
    """A booking the client consented to, picked on Calendly and paid at Checkout
    under their own name; every webhook delivered."""
    user = user or world.client_user
    slot = world.book(user)
    paid = pay(world.checkout_url(slot), name=user.name)
    assert paid.status_code == 303, paid.content[:300]
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == "confirmed"
    assert world.dead_or_failed() == []
    return slot


def session_took_place(slot: Slot) -> None:
    """Beat completes the booking once its session is over (here: as if it were)."""
    booking = Booking.objects.get(pk=slot.booking.pk)
    later = booking.end_at + timedelta(hours=settings.BOOKING_COMPLETE_AFTER_HOURS, minutes=1)
    assert complete_past(now=later) >= 1
    assert Booking.objects.get(pk=booking.pk).status == "completed"


def paid_and_past(world: World, user: User | None = None) -> Slot:
    """A paid booking whose session took place: nothing holds an erasure."""
    slot = paid_booking(world, user)
    session_took_place(slot)
    return slot


def privacy_officer(*codenames: str) -> User:
    """A Privacy staff member holding exactly these permissions."""
    user = User.objects.create_user(
        email="pia@slotpay.example", password=PASSWORD, name="Pia Privacy", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


def test_an_access_export_holds_what_we_and_the_providers_hold(world: World) -> None:
    slot = paid_booking(world)
    other = paid_booking(world, world.person(OTHER_EMAIL, OTHER_NAME))
    officer = privacy_officer("view_datasubjectrequest", "change_datasubjectrequest")
    request = dsr.dsr_file(subject=world.client_user, kind="access", actor=officer)

    version = dsr.dsr_export_prepare(request=request, actor=officer)

    request.refresh_from_db()
    assert (version, request.status, request.handler) == (1, "in_progress", officer)
    export = json.loads(request.export)
    sections = {name: section["data"] for name, section in export["sections"].items()}
    account = sections["accounts.account"]
    assert (account["email"], account["name"]) == ("clara@client.example", "Clara Client")
    [booking] = sections["bookings.bookings"]
    assert booking["reference"] == str(slot.booking.reference)
    assert (booking["name_given"], booking["email_given"]) == (
        "Clara Client",
        "clara@client.example",
    )
    assert booking["answers"] == [{"question": "What should we look at?", "answer": "My portfolio"}]
    [consent] = sections["bookings.consents"]
    assert consent["policy_version"] == 1
    [payment] = sections["payments.payments"]["payments"]
    assert (payment["amount"], payment["currency"], payment["status"]) == (PRICE, "eur", "paid")
    assert payment["stripe_checkout_session"] == slot.payment.checkout_session_id
    assert payment["stripe_charge"] == slot.payment.charge_id
    # What the providers hold, asked over their APIs.
    [invitee] = sections["calendly.invitees"]
    assert (invitee["email"], invitee["name"]) == ("clara@client.example", "Clara Client")
    assert invitee["questions_and_answers"][0]["answer"] == "My portfolio"
    [customer] = sections["stripe.customers"]["customers"]
    assert customer["id"] == slot.payment.customer_id
    assert (customer["email"], customer["name"], customer["deleted"]) == (
        "clara@client.example",
        "Clara Client",
        False,
    )
    # The audit trail about them, their own personal part included.
    actions = {entry["action"] for entry in sections["audit.trail"]}
    assert {
        "accounts.user.created",
        "payments.checkout.started",
        "bookings.booking.confirmed",
    } <= actions
    created = next(e for e in sections["audit.trail"] if e["action"] == "accounts.user.created")
    assert created["personal_data"] == {"email": "clara@client.example"}

    # Nothing of the other client who booked the same builder.
    text = request.export
    for theirs in (
        OTHER_EMAIL,
        OTHER_NAME,
        str(other.booking.reference),
        other.payment.checkout_session_id,
        other.payment.charge_id,
        other.payment.customer_id,
        other.invitee.uuid,
    ):
        assert theirs not in text, theirs
    entries_about_other = AuditEntry.objects.filter(
        target_type="bookings.booking", target_id=str(other.booking.pk)
    ).values_list("sequence", flat=True)
    assert entries_about_other
    assert not {e["sequence"] for e in sections["audit.trail"]} & set(entries_about_other)


def test_the_export_reads_as_a_page_too(world: World) -> None:
    paid_booking(world)
    officer = privacy_officer("view_datasubjectrequest", "change_datasubjectrequest")
    request = dsr.dsr_file(subject=world.client_user, kind="access", actor=officer)
    dsr.dsr_export_prepare(request=request, actor=officer)
    request.refresh_from_db()

    page = dsr.dsr_export_download(request=request, fmt="html", actor=officer)

    assert page.content_type.startswith("text/html")
    text = page.content.decode()
    assert "<h2>Your bookings</h2>" in text
    assert "clara@client.example" in text
    assert "My portfolio" in text


def test_one_open_request_of_each_kind(world: World) -> None:
    officer = privacy_officer("add_datasubjectrequest")
    dsr.dsr_file(subject=world.client_user, kind="access", actor=officer)

    with pytest.raises(dsr.DsrRefused, match="already open"):
        dsr.dsr_file(subject=world.client_user, kind="access", actor=officer)
    erasure = dsr.dsr_file(subject=world.client_user, kind="erasure", actor=officer)

    assert erasure.due_at - erasure.received_at == timedelta(days=30)
    assert DataSubjectRequest.objects.filter(subject=world.client_user).count() == 2
