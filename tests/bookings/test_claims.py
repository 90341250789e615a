"""A booking made straight on a builder's Calendly page, claimed through the emailed link.

The invitee never came through Slotpay, so no booking intent names a client: the
address Calendly gives is emailed a single-use link that lives as long as the payment
hold. Only an account with that address may claim it (which proves the address, so an
unverified one becomes verified); another account is refused and audited.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import OneTimeLink, User
from audit.models import AuditEntry
from bookings import claims, services
from bookings.models import Booking, PolicyConsent
from bookings.services import expire_overdue
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.calendly_sandbox.models import Invitee
from tests.bookings.world import World, world
from tests.conftest import PASSWORD, step_up
from tests.sandbox.stripe.helpers import pay

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

WALK_IN = "walk.in@example.org"
CLAIM_PATH = "/bookings/claim/"


def book_straight(
    world: World, email: str = WALK_IN, *, slot: int = -1, name: str = "Walk Ín"
) -> Invitee:
    """Someone opens the builder's Calendly page directly: no prefill, no intent."""
    invitee = calendly_sandbox.invitee_book(
        event_type=world.sandbox_type,
        start=calendly_sandbox.open_slots(world.sandbox_type)[slot],
        name=name,
        email=email,
        invitee_timezone="Asia/Tokyo",
        urls=world.site.urls,
    )
    world.deliver("invitee.created")
    world.retry_waiting()
    return invitee


def claim_link(to: str = WALK_IN) -> str:
    [email] = [m for m in mail.outbox if m.subject.startswith("Claim and pay") and to in m.to]
    [url] = re.findall(r"^(http\S+/bookings/claim/\?t=\S+)$", email.body, re.M)
    return url


def open_link(browser: Client, url: str) -> None:
    """Follow the emailed link: the secret moves into the session, out of the URL."""
    parts = urlsplit(url)
    answer = browser.get(f"{parts.path}?{parts.query}")
    assert (answer.status_code, answer["Location"]) == (302, CLAIM_PATH)


def unverified(email: str, name: str = "Walk In") -> User:
    return User.objects.create_user(
        email=email, password=PASSWORD, name=name, email_verified_at=None
    )


def test_a_direct_booking_is_claimed_by_its_address_and_paid(world: World, settings) -> None:
    invitee = book_straight(world)
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    assert (booking.client, booking.needs_review, booking.status) == (
        None,
        False,
        "pending_payment",
    )
    email = next(m for m in mail.outbox if m.subject.startswith("Claim and pay"))
    assert email.to == [WALK_IN]
    assert "Portfolio review" in email.body
    assert "(Asia/Tokyo)" in email.body  # the invitee's zone, named
    url = claim_link()

    visitor = Client()
    open_link(visitor, url)
    page = visitor.get(CLAIM_PATH)
    text = page.content.decode()
    assert page.status_code == 200
    assert "Sign in to claim it" in text
    assert "Create an account to claim it" in text
    assert "€80.00" in text
    assert re.search(r"\d+ minutes? from now", text)
    assert "(Asia/Tokyo)" in text  # the hold's end, in the invitee's zone, named
    assert "/accounts/login/?next=%2Fbookings%2Fclaim%2F" in text
    assert 'name="consent"' not in text  # nobody to claim it for yet

    # An account made at sign-up, its address not verified yet, in another letter case.
    walk_in = unverified("Walk.In@Example.org")
    visitor.force_login(walk_in)  # signing in keeps the session, and the link in it
    shown = visitor.get(CLAIM_PATH)
    assert 'name="consent"' in shown.content.decode()
    refused = visitor.post(
        CLAIM_PATH, {"policy_version": str(world.event_type.refund_policy_version)}
    )
    assert refused.status_code == 400
    assert "tick the box" in refused.content.decode()

    to_stripe = visitor.post(
        CLAIM_PATH,
        {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
    )
    assert to_stripe.status_code == 303
    assert "/sandbox/stripe/checkout/" in to_stripe["Location"]

    booking.refresh_from_db()
    walk_in.refresh_from_db()
    assert booking.client == walk_in
    assert walk_in.email_verified_at is not None  # following the link proved the address
    consent = PolicyConsent.objects.get(booking=booking)
    assert (consent.user, consent.policy_version) == (walk_in, 1)
    claimed = AuditEntry.objects.get(action="bookings.booking.claimed")
    assert (claimed.actor_id, claimed.data["email_verified_now"]) == (str(walk_in.pk), True)
    assert AuditEntry.objects.filter(
        action="accounts.email.verified", category="security", actor_id=str(walk_in.pk)
    ).exists()

    pay(to_stripe["Location"], "4242 4242 4242 4242")
    world.settle_everything()
    assert Booking.objects.get(pk=booking.pk).status == "confirmed"
    assert world.dead_or_failed() == []

    # Single use: the link now leads nowhere, for anyone.
    again = Client()
    open_link(again, url)
    gone = again.get(CLAIM_PATH)
    assert gone.status_code == 410
    assert "expired or was used already" in gone.content.decode()


def test_another_account_cannot_claim_and_is_audited(world: World) -> None:
    invitee = book_straight(world)
    url = claim_link()
    mallory = world.browser(world.person("mallory@elsewhere.example", "Mallory"))
    open_link(mallory, url)

    page = mallory.get(CLAIM_PATH)
    assert page.status_code == 403
    assert "sent to another email address" in page.content.decode()
    assert 'name="consent"' not in page.content.decode()
    forced = mallory.post(
        CLAIM_PATH,
        {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
    )
    assert forced.status_code == 403

    booking = Booking.objects.for_invitee(invitee.uuid).get()
    assert booking.client is None
    assert not booking.payments.exists()
    entries = AuditEntry.objects.filter(action="bookings.claim.wrong_account")
    assert entries.count() == 2
    assert {e.category for e in entries} == {"security"}
    for entry in entries:
        assert "mallory" not in str(entry.data)
        assert "walk" not in str(entry.data)

    # The link was not spent: the address it went to can still claim.
    rightful = Client()
    rightful.force_login(unverified(WALK_IN))
    open_link(rightful, url)
    assert rightful.get(CLAIM_PATH).status_code == 200


def test_the_link_expires_with_the_hold_and_the_slot_is_released(world: World) -> None:
    invitee = book_straight(world)
    url = claim_link()
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    hold = timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES)
    link = OneTimeLink.objects.get(purpose="claim_booking", target=str(booking.reference))
    assert abs(link.expires_at - (booking.created_at + hold)) < timedelta(seconds=1)

    with time_machine.travel(booking.created_at + hold + timedelta(seconds=5)):
        browser = Client()
        browser.force_login(unverified(WALK_IN))
        open_link(browser, url)
        assert browser.get(CLAIM_PATH).status_code == 410
        assert expire_overdue() == 1
    world.deliver()
    world.retry_waiting()

    assert Booking.objects.get(pk=booking.pk).status == "expired"
    event = invitee.scheduled_event.__class__.objects.get(pk=invitee.scheduled_event_id)
    assert event.status == "canceled"
    assert event.cancel_reason == (
        f"Not paid within {settings.BOOKING_PAYMENT_HOLD_MINUTES} minutes of booking"
    )
    assert world.dead_or_failed() == []


def test_a_claim_after_the_hold_is_refused_even_with_the_page_open(world: World) -> None:
    invitee = book_straight(world)
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    browser = Client()
    browser.force_login(unverified(WALK_IN))
    open_link(browser, claim_link())
    assert browser.get(CLAIM_PATH).status_code == 200

    late = booking.created_at + timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES + 1)
    with time_machine.travel(late):
        answer = browser.post(
            CLAIM_PATH,
            {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
        )
    assert answer.status_code == 410
    assert Booking.objects.get(pk=booking.pk).client is None


def test_invitee_created_again_sends_no_second_link(world: World) -> None:
    book_straight(world)
    world.redeliver_everything()
    world.retry_waiting()

    assert len([m for m in mail.outbox if m.subject.startswith("Claim and pay")]) == 1
    assert OneTimeLink.objects.filter(purpose="claim_booking").count() == 1


def test_the_address_and_the_secret_stay_out_of_the_logs(world: World, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    book_straight(world)
    url = claim_link()
    secret = url.rsplit("t=", 1)[1]
    browser = Client()
    browser.force_login(unverified(WALK_IN))
    open_link(browser, url)
    browser.post(
        CLAIM_PATH,
        {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
    )

    logged = "\n".join(
        f"{record.getMessage()} {record.__dict__}" for record in caplog.records
    ).lower()
    assert caplog.records
    assert WALK_IN not in logged
    assert secret.lower() not in logged
    for entry in AuditEntry.objects.all():
        assert WALK_IN not in str(entry.data).lower()


@pytest.mark.parametrize(
    "secret", ["x" * 5000, "abc\x00def", "ünïcødé", "", "a" * 43, "../../etc/passwd"]
)
def test_a_bad_link_is_a_clear_answer_never_an_error(world: World, secret: str) -> None:
    browser = Client()
    first = browser.get(CLAIM_PATH, {"t": secret})
    assert first.status_code == 302
    page = browser.get(CLAIM_PATH)
    assert page.status_code == 410
    assert "expired or was used already" in page.content.decode()
    assert len(browser.session.get("bookings.claim", "")) <= 65


def test_staff_send_an_unclaimed_booking_to_an_existing_client(world: World, staff) -> None:
    invitee = book_straight(world, email="typo@example.org")
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    page = f"/admin/bookings/booking/{booking.pk}/send-claim/"

    missing = admin.post(page, {"email": "nobody@example.org"})
    assert "No client account has this email address." in missing.content.decode()
    sent = admin.post(page, {"email": " CLARA@client.example "})
    assert sent.status_code == 302
    url = claim_link(to=world.client_user.email)
    entry = AuditEntry.objects.get(action="bookings.claim.sent_to_client")
    assert (entry.actor_id, entry.data["client"]) == (str(staff.pk), world.client_user.pk)

    # The earlier link (to the address that booked) no longer works; Clara's does.
    stale = world.browser(unverified("typo@example.org"))
    open_link(stale, claim_link(to="typo@example.org"))
    assert stale.get(CLAIM_PATH).status_code == 410
    clara = world.browser(world.client_user)
    open_link(clara, url)
    paying = clara.post(
        CLAIM_PATH,
        {"consent": "yes", "policy_version": str(world.event_type.refund_policy_version)},
    )
    assert paying.status_code == 303
    assert Booking.objects.get(pk=booking.pk).client == world.client_user


def test_sending_a_claim_needs_its_permission(world: World) -> None:
    invitee = book_straight(world)
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    clerk = User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, is_staff=True
    )
    admin = Client()
    admin.force_login(clerk)
    page = admin.post(f"/admin/bookings/booking/{booking.pk}/send-claim/", {"email": WALK_IN})
    assert page.status_code == 403
    assert not AuditEntry.objects.filter(action="bookings.claim.sent_to_client").exists()


def test_claim_find_refuses_a_booking_someone_paid_for(world: World) -> None:
    """A link for a booking no longer awaiting payment (paid, released) finds nothing."""
    invitee = book_straight(world)
    booking = Booking.objects.for_invitee(invitee.uuid).get()
    secret = claim_link().rsplit("t=", 1)[1]
    assert claims.claim_find(secret) is not None
    Booking.objects.filter(pk=booking.pk).update(status="expired", status_changed_at=timezone.now())
    assert claims.claim_find(secret) is None


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "ftp://calendly.com/x", "", "https://" + "a" * 300],
)
def test_only_an_http_page_of_calendlys_is_ever_linked(url: str) -> None:
    assert services._provider_page(url) == ""
    assert services._provider_page("https://calendly.com/cancellations/AB12") == (
        "https://calendly.com/cancellations/AB12"
    )


def test_coming_back_from_calendly_signed_in_says_to_check_the_email(world: World) -> None:
    """Calendly's redirect brings the person back to us: we do not hand the booking to
    whoever is signed in; the page says where the claim link went."""
    browser = world.browser(unverified(WALK_IN))
    picked = browser.post(
        urlsplit(world.event_type.scheduling_url).path,
        {
            "start": calendly_sandbox.open_slots(world.sandbox_type)[-1].isoformat(),
            "name": "Walk In",
            "email": WALK_IN,
            "timezone": "Europe/Paris",
        },
    )
    assert picked.status_code == 302
    answer = world.come_back(browser, picked["Location"])
    assert answer.status_code == 202
    assert "Check your email to pay" in answer.content.decode()
    booking = Booking.objects.get()
    assert booking.client is None
    world.deliver("invitee.created")
    world.retry_waiting()
    assert claim_link()


def test_a_calendly_name_loses_its_direction_overrides(world: World) -> None:
    """Calendly takes any name; builders read it as "Booked by": U+202E would let it
    display as someone else's, so it is kept without such characters."""
    invitee = book_straight(world, name="Nora \u202eloB\u202c\u200b")
    assert Booking.objects.for_invitee(invitee.uuid).get().invitee_name == "Nora loB"
