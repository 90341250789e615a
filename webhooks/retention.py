"""What the webhook inbox keeps, and for how long (rules of audit.purges).

- payloads of processed and ignored events: WEBHOOK_PAYLOAD_RETENTION_HOURS (24 h);
- the rows themselves (the dedup keys): WEBHOOK_DEDUP_RETENTION_DAYS (7 days, past
  Stripe's 3 days of retries; the paid-booking services are idempotent beyond that);
- dead letters, payload included, for DEAD_LETTER_RETENTION_DAYS so staff can replay
  them; waiting and failed events are kept until they end;
- rejection counters: one year, like the security log.

No legal hold reaches into the inbox: a payload is the provider's copy of what the
domain records already hold, and those are what the holds keep.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from audit import purges
from webhooks.models import WebhookEvent, WebhookRejection

DEAD_LETTER_RETENTION_DAYS = 30
REJECTION_RETENTION_DAYS = 365

Status = WebhookEvent.Status
DONE = (Status.PROCESSED, Status.IGNORED)


class Payloads(purges.RowsRule):
    name = "webhooks.payloads"
    description = "Payloads and headers of processed and ignored events, blanked."
    counted_from = "the event's processing"
    clock = "processed_at"

    @property
    def period(self) -> timedelta:  # type: ignore[override]  # read from the settings
        return timedelta(hours=settings.WEBHOOK_PAYLOAD_RETENTION_HOURS)

    def candidates(self) -> QuerySet[WebhookEvent]:
        return WebhookEvent.objects.filter(status__in=DONE, payload__isnull=False)

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        return rows.update(payload=None, headers={}, payload_purged_at=now)


class DedupKeys(purges.RowsRule):
    name = "webhooks.dedup_keys"
    description = "Processed and ignored events (the dedup keys), deleted."
    counted_from = "the event's receipt"
    clock = "received_at"

    @property
    def period(self) -> timedelta:  # type: ignore[override]  # read from the settings
        return timedelta(days=settings.WEBHOOK_DEDUP_RETENTION_DAYS)

    def candidates(self) -> QuerySet[WebhookEvent]:
        return WebhookEvent.objects.filter(status__in=DONE)


class DeadLetters(purges.RowsRule):
    name = "webhooks.dead_letters"
    description = "Dead-lettered events, payload included, deleted."
    counted_from = "the event's receipt"
    clock = "received_at"
    period = timedelta(days=DEAD_LETTER_RETENTION_DAYS)

    def candidates(self) -> QuerySet[WebhookEvent]:
        return WebhookEvent.objects.filter(status=Status.DEAD)


class RejectionCounters(purges.RowsRule):
    name = "webhooks.rejections"
    description = "Hourly counts of refused deliveries, deleted."
    counted_from = "the hour counted"
    clock = "hour"
    period = timedelta(days=REJECTION_RETENTION_DAYS)

    def candidates(self) -> QuerySet[WebhookRejection]:
        return WebhookRejection.objects.all()


# Payloads first: an event both past its payload's and its dedup key's time is counted
# by both forecasts, and blanked before it is deleted.
RULES = [
    purges.register(rule) for rule in (Payloads(), DedupKeys(), DeadLetters(), RejectionCounters())
]

# What ``purge`` answered before the rules existed (webhooks.tasks.purge, the tests).
_LEGACY_KEYS = {
    "webhooks.payloads": "payloads_purged",
    "webhooks.dedup_keys": "events_deleted",
    "webhooks.dead_letters": "dead_letters_deleted",
    "webhooks.rejections": "rejection_counters_deleted",
}


def purge() -> dict[str, int]:
    """Run the inbox's rules now (audited by audit.purges); rows purged per kind."""
    done = purges.run(rules=[rule.name for rule in RULES])
    return {_LEGACY_KEYS[name]: rows for name, rows in done.items()}
