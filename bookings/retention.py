"""What bookings purges and when (rules of audit.purges), and the holds it extends.

- ``bookings.personal_data``: a booking's invitee name, email and answers are set to
  NULL a year after the appointment's end, as an erasure does (bookings/privacy.py);
  the booking itself (times, price, status, references) stays with its payments.
- ``bookings.records``: the booking row, with its refund-policy consents, is deleted 7
  years after the appointment's end, once its payments are gone (payments.records
  deletes them 7 years after their creation, which comes before the appointment's end:
  payments/retention.py is imported here, so its rule is registered, and runs, first).
  Its client link and consents are personal data that only the books justified; a
  booking some other booking was rescheduled from waits until that one has gone.

The hold of an open data-subject request (accounts/retention.py) covers the person's
account; here it also covers their bookings and those bookings' payments.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.retention import OPEN_DATA_SUBJECT_REQUEST, open_request_subjects
from audit import purges
from bookings.models import Booking, PolicyConsent
from payments.models import Payment
from payments.retention import PAYMENT_RETENTION

PERSONAL_DATA_RETENTION = timedelta(days=365)
RECORD_RETENTION = PAYMENT_RETENTION


class PersonalData(purges.RowsRule):
    name = "bookings.personal_data"
    description = "Invitee name, email and answers of a booking, anonymised (set to NULL)."
    period = PERSONAL_DATA_RETENTION
    counted_from = "the appointment's end"
    clock = "end_at"
    target_type = "bookings.booking"

    def candidates(self) -> QuerySet[Booking]:
        return Booking.objects.filter(
            Q(invitee_name__isnull=False)
            | Q(invitee_email__isnull=False)
            | Q(answers__isnull=False)
        )

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        return rows.update(invitee_name=None, invitee_email=None, answers=None)


class Records(purges.RowsRule):
    name = "bookings.records"
    description = "Bookings (already anonymised) with their refund-policy consents, deleted."
    period = RECORD_RETENTION
    counted_from = "the appointment's end"
    clock = "end_at"
    target_type = "bookings.booking"

    def candidates(self) -> QuerySet[Booking]:
        return Booking.objects.all()

    def expired(self, now: datetime) -> QuerySet[Any]:
        # Not due while a payment on it, or the booking it was rescheduled from, is not
        # due yet (held ones are: the hold is then the booking's, and named).
        return (
            super()
            .expired(now)
            .exclude(payments__created_at__gt=now - PAYMENT_RETENTION)
            .exclude(rescheduled_from__end_at__gt=self.cutoff(now))
        )

    def purgeable(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        return rows.filter(payments__isnull=True, rescheduled_from__isnull=True)

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        with transaction.atomic():
            PolicyConsent.objects.filter(booking__in=rows.values("pk")).delete()
            return rows.delete()[1].get(Booking._meta.label, 0)


def _open_request_bookings() -> Iterator[tuple[str, str]]:
    subjects = open_request_subjects()
    for pk in Booking.objects.filter(client__in=subjects).values_list("pk", flat=True):
        yield ("bookings.booking", str(pk))
    payments = Payment.objects.filter(booking__client__in=subjects).values_list("pk", flat=True)
    for pk in payments:
        yield ("payments.payment", str(pk))


RULES = [purges.register(PersonalData()), purges.register(Records())]
purges.register_hold(OPEN_DATA_SUBJECT_REQUEST, _open_request_bookings)
