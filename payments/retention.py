"""What payments purges and when (rules of audit.purges), and the holds it knows of.

A payment, with everything hanging on it (its refunds, refund approvals, disputes), is
kept 7 years from its creation, the books' retention, then deleted. The booking it paid
for outlives it: bookings/retention.py deletes that once its payments are gone.

Holds: an open dispute (the payment's status, ``disputed``, marks it) and a pending
refund (a refund on its way to Stripe, or waiting for a second person's approval) keep
the payment and its booking, whatever their age.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import QuerySet

from audit import purges
from payments.models import Payment, Refund, RefundApproval

PAYMENT_RETENTION = timedelta(days=7 * 365)

OPEN_DISPUTE = "open dispute"
PENDING_REFUND = "pending refund"

# Deleted with their parent by the database's own rule, or not at all: the rest (PROTECT,
# RESTRICT, CASCADE) are deleted here, children first.
_LEFT_TO_THE_DATABASE = (models.SET_NULL, models.SET_DEFAULT, models.DO_NOTHING)


def _with_bookings(payments: QuerySet[Payment]) -> Iterator[tuple[str, str]]:
    for pk, booking_id in payments.values_list("pk", "booking_id"):
        yield ("payments.payment", str(pk))
        yield ("bookings.booking", str(booking_id))


def open_disputes() -> Iterator[tuple[str, str]]:
    """Disputed payments and their bookings: the evidence of a dispute still open."""
    return _with_bookings(Payment.objects.filter(status=Payment.Status.DISPUTED))


def pending_refunds() -> Iterator[tuple[str, str]]:
    """Payments with a refund on its way or waiting for approval, and their bookings."""
    return _with_bookings(
        Payment.objects.filter(
            models.Q(refunds__status__in=(Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION))
            | models.Q(approvals__status=RefundApproval.Status.PENDING)
        ).distinct()
    )


def delete_with_dependents(rows: QuerySet[Any]) -> int:
    """Delete ``rows`` and, first, every row that refers to them and would refuse their
    deletion (PROTECT), recursively: a payment's refund approvals before its refunds,
    both before the payment. Returns how many of ``rows`` went. Call it in a transaction."""
    model = rows.model
    for relation in model._meta.related_objects:
        if relation.many_to_many or relation.on_delete in _LEFT_TO_THE_DATABASE:
            continue
        children = relation.related_model._default_manager.filter(
            **{f"{relation.field.name}__in": rows.values("pk")}
        )
        delete_with_dependents(children)
    return rows.delete()[1].get(model._meta.label, 0)


class PaymentRecords(purges.RowsRule):
    name = "payments.records"
    description = "Payments with their refunds, refund approvals and disputes, deleted."
    period = PAYMENT_RETENTION
    counted_from = "the payment's creation"
    clock = "created_at"
    target_type = "payments.payment"

    def candidates(self) -> QuerySet[Payment]:
        return Payment.objects.all()

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        return delete_with_dependents(rows)


RULES = [purges.register(PaymentRecords())]
purges.register_hold(OPEN_DISPUTE, open_disputes)
purges.register_hold(PENDING_REFUND, pending_refunds)
