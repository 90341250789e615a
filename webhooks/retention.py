"""What the webhook inbox keeps, and for how long.

- payloads of processed and ignored events: WEBHOOK_PAYLOAD_RETENTION_HOURS (24 h);
- the rows themselves (the dedup keys): WEBHOOK_DEDUP_RETENTION_DAYS (7 days, past
  Stripe's 3 days of retries; the paid-booking services are idempotent beyond that);
- dead letters, payload included, for DEAD_LETTER_RETENTION_DAYS so staff can replay
  them; waiting and failed events are kept until they end;
- rejection counters: one year, like the security log.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import audit
from webhooks.models import WebhookEvent, WebhookRejection

DEAD_LETTER_RETENTION_DAYS = 30
REJECTION_RETENTION_DAYS = 365

Status = WebhookEvent.Status


def purge() -> dict[str, int]:
    now = timezone.now()
    done = (Status.PROCESSED, Status.IGNORED)
    payload_cutoff = now - timedelta(hours=settings.WEBHOOK_PAYLOAD_RETENTION_HOURS)
    dedup_cutoff = now - timedelta(days=settings.WEBHOOK_DEDUP_RETENTION_DAYS)
    dead_cutoff = now - timedelta(days=DEAD_LETTER_RETENTION_DAYS)
    with transaction.atomic():
        counts = {
            "payloads_purged": WebhookEvent.objects.filter(
                status__in=done, processed_at__lte=payload_cutoff, payload__isnull=False
            ).update(payload=None, headers={}, payload_purged_at=now),
            "events_deleted": WebhookEvent.objects.filter(
                status__in=done, received_at__lte=dedup_cutoff
            ).delete()[0],
            "dead_letters_deleted": WebhookEvent.objects.filter(
                status=Status.DEAD, received_at__lte=dead_cutoff
            ).delete()[0],
            "rejection_counters_deleted": WebhookRejection.objects.filter(
                hour__lte=now - timedelta(days=REJECTION_RETENTION_DAYS)
            ).delete()[0],
        }
        if any(counts.values()):
            audit.record(
                "webhooks.retention.purged",
                category=audit.Category.DATA,
                actor="webhooks.retention",
                data=counts,
            )
    return counts
