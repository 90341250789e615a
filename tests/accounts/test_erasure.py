"""Erasure: on PostgreSQL, after it the subject's name and email are in no table
(encrypted columns decrypted, the sandboxes' included); payments keep their amounts
and Stripe references; the audit chain verifies and shows the redaction; the
providers were asked to delete."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connections, router
from django.test import Client
from django.utils import timezone
from encrypted_model_fields.fields import EncryptedMixin

from accounts import dsr
from accounts.models import ApiToken, DataSubjectRequest, SignIn, User
from audit.models import AuditEntry
from bookings.models import Booking, PolicyConsent
from payments.models import Payment, RefundApproval
from sandbox.calendly_sandbox.models import DataDeletionRequest, Invitee
from sandbox.stripe_sandbox.models import RestrictedKey, StripeObject
from tests.accounts.test_dsr_export import (
    OTHER_EMAIL,
    OTHER_NAME,
    paid_and_past,
    paid_booking,
    privacy_officer,
    session_took_place,
)
from tests.bookings.world import PRICE, Slot, World, world
from tests.conftest import PASSWORD

__all__ = ["world"]

MISTYPED = "not it"  # pragma: allowlist secret

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL, NAME = "clara@client.example", "Clara Client"
ERASER = ("view_datasubjectrequest", "change_datasubjectrequest", "carry_out_erasure")


def raw_scan(*needles: str) -> list[str]:
    """Every (table.column, pk) whose stored value holds a needle, read with SQL (not
    the ORM), encrypted columns decrypted: every model of every app, sandboxes too."""
    cipher = MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEY])
    folded = [needle.casefold() for needle in needles]
    found = []
    models = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
    assert {"accounts_user", "sandbox_stripe_stripeobject", "audit_auditentry"} <= {
        m._meta.db_table for m in models
    }
    for model in models:
        connection = connections[router.db_for_read(model)]
        fields = model._meta.concrete_fields
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {quote(model._meta.db_table)}")  # noqa: S608
            rows = cursor.fetchall()
        for row in rows:
            for field, value in zip(fields, row, strict=True):
                text = _plain(field, value, cipher)
                if any(needle in text.casefold() for needle in folded):
                    found.append(f"{model._meta.db_table}.{field.column} (pk={row[0]})")
    return found


def _plain(field: Any, value: Any, cipher: MultiFernet) -> str:
    if value is None:
        return ""
    if isinstance(field, EncryptedMixin):
        try:
            return cipher.decrypt(str(value).encode()).decode()
        except InvalidToken:
            return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, memoryview):
        return bytes(value).decode(errors="replace")
    return str(value)


def erase(world: World, officer: User | None = None) -> DataSubjectRequest:
    officer = officer or privacy_officer(*ERASER)
    request = dsr.dsr_file(subject=world.client_user, kind="erasure", actor=officer)
    return dsr.subject_erase(request=request, actor=officer)


@pytest.mark.postgres
def test_after_an_erasure_the_name_and_email_are_nowhere(world: World) -> None:
    slot = paid_and_past(world)
    other = paid_booking(world, world.person(OTHER_EMAIL, OTHER_NAME))
    leave_account_traces(world)
    payment = slot.payment
    before = raw_scan(EMAIL, NAME)
    assert any(hit.startswith("accounts_user.email") for hit in before)
    assert any(hit.startswith("sandbox_stripe_stripeobject.data") for hit in before)
    assert any(hit.startswith("sandbox_calendly_invitee") for hit in before)
    assert any(hit.startswith("audit_auditentry.personal_data") for hit in before)
    # The chained part of the audit entries never held them (only the sealed part).
    assert not [hit for hit in before if hit.startswith("audit_auditentry.data")]

    request = erase(world)

    steps = {step.name: (step.status, step.outcome) for step in request.steps.all()}
    assert request.status == "completed", steps
    assert all(status == "done" for status, _ in steps.values())
    assert raw_scan(EMAIL, NAME) == []
    assert not any(
        model.objects.filter(user=world.client_user).exists() for model in (SignIn, ApiToken)
    )

    # Payments stay, with their amounts and Stripe's references, linked to no one.
    payment.refresh_from_db()
    assert (payment.amount, payment.currency, payment.status) == (PRICE, "eur", "paid")
    assert payment.checkout_session_id.startswith("cs_")
    assert payment.payment_intent_id.startswith("pi_")
    assert payment.charge_id.startswith("ch_")
    account = User.objects.get(pk=world.client_user.pk)
    assert (account.name, account.is_active, account.has_usable_password()) == ("", False, False)
    assert account.email.endswith("@erased.invalid")
    booking = Booking.objects.get(pk=slot.booking.pk)
    assert (booking.invitee_name, booking.invitee_email, booking.answers) == (None, None, None)
    # Consent evidence kept, under the pseudonym the account now is.
    consent = PolicyConsent.objects.get(booking=booking)
    assert (consent.user_id, consent.policy_version) == (account.pk, 1)
    assert account.email.startswith(f"erased-{steps_pseudonym(request)}")

    # The chain verifies, and shows who redacted what and why.
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "verified" in out.getvalue()
    redaction = AuditEntry.objects.get(action="audit.personal_data.redacted")
    assert redaction.actor_id == str(request.handler_id)
    assert "erasure" in redaction.data["reason"]
    assert redaction.data["entries"] >= 2
    redacted = AuditEntry.objects.filter(sequence__in=redaction.data["sequences"])
    assert {e.action for e in redacted} >= {"accounts.user.created", "accounts.user.login_failed"}
    assert all(e.personal_data is None and e.personal_data_redacted_at for e in redacted)
    assert AuditEntry.objects.filter(action="accounts.dsr.step_done").count() == len(steps)

    # The providers were asked: Calendly's deletion recorded, Stripe's customer gone.
    assert DataDeletionRequest.objects.get().invitees_erased == 1
    invitee = Invitee.objects.get(pk=slot.invitee.pk)
    assert invitee.email.endswith("@deleted.calendly.com")
    customer = StripeObject.objects.get(id=payment.customer_id)
    assert customer.data == {"id": payment.customer_id, "object": "customer", "deleted": True}
    assert StripeObject.objects.filter(object="event", data__type="customer.deleted").count() == 1
    # Stripe's copies of their name and email redacted, the money facts left.
    charge = StripeObject.objects.get(id=payment.charge_id).data
    assert charge["billing_details"]["email"] == "[redacted]"
    assert (charge["amount"] >= PRICE, charge["paid"]) == (True, True)

    assert_untouched(other)


def leave_account_traces(world: World) -> None:
    """A mistyped password (the failure's audit entry seals the address typed), a
    sign-in (network, device) and an API token (its name is free text); the last two
    are in the person's access export."""
    Client().post("/accounts/login/", {"username": EMAIL, "password": MISTYPED})
    Client().post("/accounts/login/", {"username": EMAIL, "password": PASSWORD})
    ApiToken.objects.create(
        user=world.client_user,
        name=f"{NAME}'s laptop",
        prefix="slp_erase000",
        digest="0" * 64,
        scopes=["bookings:read"],
        expires_at=timezone.now() + timedelta(days=90),
    )
    exported = dsr.subject_export(subject=world.client_user)["sections"]
    networks = [row["network"] for row in exported["accounts.sign_ins"]["data"]["sign_ins"]]
    assert "127.0.0.0/24" in networks
    assert exported["accounts.sign_ins"]["data"]["api_tokens"][0]["prefix"] == "slp_erase000"


def assert_untouched(other: Slot) -> None:
    """The other client of the same builder keeps everything."""
    assert Booking.objects.get(pk=other.booking.pk).invitee_email == OTHER_EMAIL
    assert not StripeObject.objects.get(id=other.payment.customer_id).data.get("deleted")
    assert Invitee.objects.get(pk=other.invitee.pk).email == OTHER_EMAIL
    assert raw_scan(OTHER_EMAIL)


def steps_pseudonym(request: DataSubjectRequest) -> str:
    outcome = request.steps.get(name="accounts.account").outcome
    return outcome.split(" as ")[1].split(",")[0]


def test_running_an_erasure_again_changes_nothing(world: World) -> None:
    paid_and_past(world)
    request = erase(world)
    entries = AuditEntry.objects.count()

    with pytest.raises(dsr.DsrRefused):
        dsr.subject_erase(request=request, actor=request.handler)

    assert AuditEntry.objects.count() == entries
    assert DataDeletionRequest.objects.count() == 1


def stripe_refuses_customers(settings: Any) -> str:
    """Use a restricted key that may not touch customers (Stripe answers 403);
    returns the key to put back."""
    good_key = settings.STRIPE_API_KEY
    settings.STRIPE_API_KEY = RestrictedKey.objects.create(
        name="no customers", key="rk_test_nocustomers0001", permissions={"charges": "read"}
    ).key
    return good_key


def test_a_provider_refusal_fails_its_step_and_the_retry_finishes(
    world: World, settings: Any
) -> None:
    slot = paid_and_past(world)
    good_key = stripe_refuses_customers(settings)

    request = erase(world)

    stripe_step = request.steps.get(name="stripe.customers")
    assert (request.status, stripe_step.status) == ("in_progress", "failed")
    assert "failed" in stripe_step.outcome
    # Everything else is done, and the step kept what it needs to run again.
    assert request.steps.exclude(name="stripe.customers").filter(status="done").count() == (
        request.steps.count() - 1
    )
    assert stripe_step.arguments
    assert not StripeObject.objects.get(id=slot.payment.customer_id).data.get("deleted")

    settings.STRIPE_API_KEY = good_key
    request = dsr.subject_erase(request=request, actor=request.handler)

    assert request.status == "completed"
    stripe_step.refresh_from_db()
    assert (stripe_step.status, stripe_step.arguments) == ("done", None)
    assert StripeObject.objects.get(id=slot.payment.customer_id).data["deleted"] is True


def test_beat_queues_a_failed_provider_step_again(world: World, settings: Any) -> None:
    slot = paid_and_past(world)
    good_key = stripe_refuses_customers(settings)
    request = erase(world)
    assert request.steps.get(name="stripe.customers").status == "failed"
    assert dsr.erasure_steps_retry(older_than_seconds=3600) == 0  # too recent

    settings.STRIPE_API_KEY = good_key
    assert dsr.erasure_steps_retry(older_than_seconds=0) == 1

    request.refresh_from_db()
    assert request.status == "completed"
    assert StripeObject.objects.get(id=slot.payment.customer_id).data["deleted"] is True
    assert dsr.erasure_steps_retry(older_than_seconds=0) == 0


def assert_nothing_erased(world: World, request: DataSubjectRequest, slot: Slot) -> None:
    """A held erasure ran no step: every kind of data is as it was."""
    assert not request.steps.exists()
    assert User.objects.get(pk=world.client_user.pk).email == EMAIL
    assert Booking.objects.get(pk=slot.booking.pk).invitee_email == EMAIL
    assert not DataDeletionRequest.objects.exists()
    assert not StripeObject.objects.get(id=slot.payment.customer_id).data.get("deleted")
    assert not AuditEntry.objects.filter(action__startswith="accounts.dsr.step_").exists()


def test_a_pending_refund_holds_the_whole_erasure_until_it_settles(world: World) -> None:
    slot = paid_and_past(world)
    payment = Payment.objects.get(pk=slot.payment.pk)
    refund = payment.refunds.create(amount=1000, reason="Goodwill", status="pending")

    request = erase(world)

    assert request.status == "held"
    assert request.hold_reason == (
        f"Refund {refund.reference} is not settled yet: a pending refund keeps its payment."
    )
    assert_nothing_erased(world, request, slot)

    refund.status = "succeeded"
    refund.save(update_fields=["status"])
    request = dsr.subject_erase(request=request, actor=request.handler)
    assert (request.status, request.hold_reason) == ("completed", "")


def test_a_refund_waiting_for_approval_holds_the_erasure(world: World) -> None:
    """Finance filed a refund a second member must approve: erasing first would
    have the approval refund (and Stripe learn of) a person already erased."""
    slot = paid_and_past(world)
    finance = User.objects.create_user(
        email="fin@slotpay.example", password=PASSWORD, name="Fin Ance", is_staff=True
    )
    approval = RefundApproval.objects.create(
        payment=slot.payment,
        reference=uuid.uuid4(),
        amount=2500,
        currency="eur",
        reason="Goodwill",
        requested_by=finance,
    )

    request = erase(world)

    assert request.status == "held"
    assert "A refund of €25.00 waits for approval" in request.hold_reason
    assert slot.payment.checkout_session_id in request.hold_reason
    assert_nothing_erased(world, request, slot)

    approval.status = RefundApproval.Status.REJECTED
    approval.save(update_fields=["status"])
    assert dsr.subject_erase(request=request, actor=request.handler).status == "completed"


def test_a_dispute_holds_every_step_and_says_each_reason_once(world: World) -> None:
    slot = paid_booking(world)
    Client().post("/accounts/login/", {"username": EMAIL, "password": MISTYPED})
    slot.booking.dispute(actor="webhooks.stripe", reason="charge.dispute.created")
    Payment.objects.filter(pk=slot.payment.pk).update(status="disputed")
    session = world.browser(world.client_user)  # a signed-in session: evidence too
    assert session.get("/accounts/privacy/").status_code == 200

    request = erase(world)

    assert request.status == "held"
    reasons = request.hold_reason.split("\n")
    assert reasons == [
        f"Booking {slot.booking.reference} is disputed: kept for the dispute.",
        f"Payment {slot.payment.checkout_session_id} is disputed: an open dispute keeps it.",
    ]
    assert_nothing_erased(world, request, slot)
    assert session.get("/accounts/privacy/").status_code == 200  # not signed out
    assert AuditEntry.objects.filter(action="accounts.dsr.held").count() == 1
    assert dsr.subject_erase(request=request, actor=request.handler).status == "held"
    assert AuditEntry.objects.filter(action="accounts.dsr.held").count() == 1  # same reasons


def test_a_payment_still_open_at_checkout_holds_the_payment_side(world: World) -> None:
    slot = world.book()  # consented and scheduled, not paid yet

    request = erase(world)

    assert request.status == "held"
    session = slot.payment.checkout_session_id
    assert f"Payment {session} is open at Checkout" in request.hold_reason
    assert not request.steps.exists()


def test_an_open_access_request_holds_the_erasure(world: World) -> None:
    paid_and_past(world)
    officer = privacy_officer(*ERASER)
    access = dsr.dsr_file(subject=world.client_user, kind="access", actor=officer)

    request = erase(world, officer)

    assert request.status == "held"
    assert f"request {access.pk} is still open" in request.hold_reason
    assert not request.steps.filter(status="done").exists()
    assert User.objects.get(pk=world.client_user.pk).name == NAME


def test_an_upcoming_confirmed_session_holds_the_erasure(world: World) -> None:
    """Erasing now would leave the session confirmed for an anonymous client while
    Calendly forgets the invitee: it is canceled, or takes place, first."""
    slot = paid_booking(world)
    start = Booking.objects.get(pk=slot.booking.pk).start_at

    request = erase(world)

    assert request.status == "held"
    assert request.hold_reason == (
        f"An upcoming session on {start.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
        f"(booking {slot.booking.reference}) must be canceled or held first."
    )
    assert_nothing_erased(world, request, slot)

    session_took_place(slot)
    request = dsr.subject_erase(request=request, actor=request.handler)
    assert request.status == "completed"
    assert Booking.objects.get(pk=slot.booking.pk).status == "completed"


def test_a_builders_member_is_not_erased_while_their_clients_bookings_are_open(
    world: World,
) -> None:
    """The member's name and email are in their clients' records (Calendly's payloads,
    the emails sent): erasing the member would purge other people's evidence."""
    slot = paid_booking(world)
    officer = privacy_officer(*ERASER)
    request = dsr.dsr_file(subject=world.builder_user, kind="erasure", actor=officer)

    request = dsr.subject_erase(request=request, actor=officer)

    assert request.status == "held"
    assert "Ada's Studio, whose member this is, has open bookings" in request.hold_reason
    assert not request.steps.filter(status="done").exists()
    assert User.objects.get(pk=world.builder_user.pk).name == "Ada Builder"
    assert Booking.objects.get(pk=slot.booking.pk).invitee_email == EMAIL
