"""What payments holds on a person, for data-subject requests (accounts.privacy).

Registered from PaymentsConfig.ready. Payments and refunds keep their references and
amounts for the 7-year legal retention; they hold no name or email, and once the
account is anonymised nothing ties them to the person. At Stripe, the customer is
deleted and the personal data on its sessions, payment intents and charges redacted.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.privacy import DataKind, Step, Subject, registry
from core.actors import Actor
from payments import stripe_gateway
from payments.models import Payment, Refund, RefundApproval
from payments.money import format_money


def _payments(subject: Subject) -> QuerySet[Payment]:
    # Named through the booking: payments sits below bookings and does not import it.
    return Payment.objects.filter(booking__client=subject.user)


def _refunds(subject: Subject) -> QuerySet[Refund]:
    return Refund.objects.filter(payment__booking__client=subject.user)


def _holds(subject: Subject) -> list[str]:
    reasons = [
        f"Payment {session} is disputed: an open dispute keeps it."
        for session in _payments(subject)
        .filter(status=Payment.Status.DISPUTED)
        .values_list("checkout_session_id", flat=True)
    ]
    reasons += [
        f"Payment {session} is open at Checkout: expire it (or let it settle) first."
        for session in _payments(subject)
        .filter(status=Payment.Status.OPEN)
        .values_list("checkout_session_id", flat=True)
    ]
    reasons += [
        f"Refund {reference} is not settled yet: a pending refund keeps its payment."
        for reference in _refunds(subject)
        .filter(status__in=(Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION))
        .values_list("reference", flat=True)
    ]
    # Filed by Finance, waiting for a second member: approving it would refund (and
    # tell Stripe about) a person already erased.
    reasons += [
        f"A refund of {format_money(amount, currency)} waits for approval "
        f"(payment {session}): approve or reject it first."
        for amount, currency, session in RefundApproval.objects.filter(
            payment__booking__client=subject.user, status=RefundApproval.Status.PENDING
        )
        .order_by("requested_at")
        .values_list("amount", "currency", "payment__checkout_session_id")
    ]
    return reasons


class PaymentData(DataKind):
    def export(self, subject: Subject) -> Any:
        return {
            "payments": [
                {
                    "booking": payment.booking.reference,
                    "amount": payment.amount,
                    "tax_amount": payment.tax_amount,
                    "currency": payment.currency,
                    "status": payment.status,
                    "card_brand": payment.card_brand,
                    "card_last4": payment.card_last4,
                    "paid_at": payment.paid_at,
                    "stripe_checkout_session": payment.checkout_session_id,
                    "stripe_payment_intent": payment.payment_intent_id,
                    "stripe_charge": payment.charge_id,
                    "stripe_customer": payment.customer_id,
                    "receipt_url": payment.receipt_url,
                }
                for payment in _payments(subject).select_related("booking").order_by("created_at")
            ],
            "refunds": [
                {
                    "reference": refund.reference,
                    "stripe_refund": refund.stripe_refund_id,
                    "payment": refund.payment.checkout_session_id,
                    "amount": refund.amount,
                    "status": refund.status,
                    "created_at": refund.created_at,
                }
                for refund in _refunds(subject).select_related("payment").order_by("created_at")
            ],
        }

    def holds(self, subject: Subject) -> list[str]:
        return _holds(subject)

    def audit_targets(self, subject: Subject) -> list[tuple[str, str]]:
        pks = _payments(subject).values_list("pk", flat=True)
        refunds = _refunds(subject).values_list("pk", flat=True)
        return [("payments.payment", str(pk)) for pk in pks] + [
            ("payments.refund", str(pk)) for pk in refunds
        ]

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        return Step(
            f"{_payments(subject).count()} payment(s) and {_refunds(subject).count()} "
            "refund(s) kept: references and amounts (7-year legal retention), no personal data"
        )


class StripeData(DataKind):
    """The Stripe customers made at Checkout: read for an export; deleted, then the
    personal data on their sessions, payment intents and charges redacted."""

    def export(self, subject: Subject) -> Any:
        customers: list[dict[str, Any]] = []
        ids = sorted(
            set(_payments(subject).exclude(customer_id="").values_list("customer_id", flat=True))
        )
        for customer_id in ids:
            try:
                customer = stripe_gateway.retrieve_customer(customer_id)
            except stripe_gateway.PaymentProviderError as exc:
                customers.append({"id": customer_id, "unavailable": type(exc).__name__})
                continue
            customers.append(
                {
                    "id": customer.id,
                    "deleted": customer.deleted,
                    "email": customer.email,
                    "name": customer.name,
                    "phone": customer.phone,
                    "created": customer.created,
                }
            )
        return {"customers": customers}

    def holds(self, subject: Subject) -> list[str]:
        return _holds(subject)

    def plan(self, subject: Subject) -> dict[str, Any] | None:
        rows = list(
            _payments(subject).values_list(
                "customer_id", "checkout_session_id", "payment_intent_id", "charge_id"
            )
        )
        plan = {
            "customers": sorted({row[0] for row in rows if row[0]}),
            "checkout_sessions": sorted({row[1] for row in rows if row[1]}),
            "payment_intents": sorted({row[2] for row in rows if row[2]}),
            "charges": sorted({row[3] for row in rows if row[3]}),
        }
        return plan if any(plan.values()) else None

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        plan = arguments or {}
        if not any(plan.values()):
            return Step("no Stripe object to delete")
        deleted = sum(stripe_gateway.delete_customer(cid) for cid in plan.get("customers", []))
        job = stripe_gateway.redact_objects(
            job_ref=f"subject-{subject.pseudonym}",
            objects={kind: plan.get(kind, []) for kind in stripe_gateway.REDACTABLE},
        )
        if not job.finished:
            raise stripe_gateway.ProviderUnavailable(f"redaction job {job.id} is {job.status}")
        return Step(
            f"{deleted} Stripe customer(s) deleted ({len(plan.get('customers', []))} named); "
            f"redaction job {job.id} {job.status}"
        )


def register() -> None:
    registry.register(
        StripeData("stripe.customers", "What Stripe holds", position=20, provider=True)
    )
    registry.register(PaymentData("payments.payments", "Your payments and refunds", position=50))
