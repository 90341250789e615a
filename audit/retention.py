"""What the audit app purges and when (the trail itself is never purged here)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.categories import Category
from audit.models import SecurityEventCount
from audit.services import record

# The hourly counts of failed sign-ins and lockouts: long enough to compare this
# quarter's floods with the last, not a record of anyone (the entries are that).
SECURITY_EVENT_COUNT_DAYS = 90


def security_event_counts_purge(*, now: datetime | None = None) -> int:
    """Delete the hourly counts older than SECURITY_EVENT_COUNT_DAYS; returns how many.
    A purge that deletes something is audited."""
    cutoff = (now or timezone.now()) - timedelta(days=SECURITY_EVENT_COUNT_DAYS)
    with transaction.atomic():
        deleted, _ = SecurityEventCount.objects.filter(hour__lt=cutoff).delete()
        if deleted:
            record(
                "audit.security_event_counts.purged",
                category=Category.SECURITY,
                actor="audit.retention",
                data={"rows": deleted, "before": cutoff.isoformat()},
            )
    return deleted
