"""Refunds stuck pending (core/alerts.py runs it every five minutes).

A refund is sent to Stripe after the commit that decided it, and sent again every
five minutes while it is unfinished (payments.tasks.retry_unfinished_refunds), with
the same idempotency key. Pending for over an hour means those retries keep failing
(Stripe unreachable, a key without refund rights) or Stripe holds it: the client is
owed money either way.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.alerts import Problem, register_watchdog
from payments.models import Refund

STUCK_AFTER = timedelta(hours=1)
LISTED = 10  # references in the email; the admin has all of them


def refunds_stuck() -> list[Problem]:
    stuck = Refund.objects.filter(
        status=Refund.Status.PENDING, created_at__lt=timezone.now() - STUCK_AFTER
    ).order_by("created_at", "pk")
    total = stuck.count()
    if not total:
        return []
    unsent = stuck.filter(stripe_refund_id__isnull=True).count()
    references = [
        str(reference) for reference in stuck.values_list("reference", flat=True)[:LISTED]
    ]
    lines = [
        f"{unsent} of them not accepted by Stripe yet (our retries fail: see last_error); "
        f"{total - unsent} accepted and waiting for Stripe's outcome.",
        "Refunds (our references): " + ", ".join(references) + (" ..." if total > LISTED else ""),
        f"Refunds: {settings.SITE_URL}/admin/payments/refund/?status__exact=pending",
    ]
    return [
        Problem(
            "payments.refunds_stuck",
            f"{total} refund{'s' if total != 1 else ''} pending for over an hour.",
            lines,
        )
    ]


register_watchdog("payments.refunds_stuck", refunds_stuck)
