"""Watchdogs over the inbox (core/alerts.py runs them every five minutes).

- ``webhooks.dead_letters``: events that failed every retry and wait for a person
  to replay them; each one is a payment, a booking or a cancellation we did not act
  on. Open while any dead letter can still be replayed (its payload kept).
- ``webhooks.signature_failures.<provider>``: more refused signatures in the last
  hour than WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD. Someone forging events, or a
  signing secret rolled on one side only (then every real event is being refused).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from core.alerts import Problem, register_watchdog
from webhooks.models import Provider, WebhookEvent, WebhookRejection

# The refusals of a signature check (webhooks/verification.py): wrong, unparseable,
# or signed too long ago or in the future (a replay, or a skewed clock).
SIGNATURE_REASONS = (
    "signature_mismatch",
    "signature_malformed",
    "timestamp_stale",
    "timestamp_in_future",
)


def dead_letters() -> list[Problem]:
    dead = WebhookEvent.objects.filter(status=WebhookEvent.Status.DEAD, payload__isnull=False)
    counts = dict(dead.values_list("provider").annotate(events=Count("pk")).order_by("provider"))
    total = sum(counts.values())
    if not total:
        return []
    by_provider = ", ".join(f"{provider}: {count}" for provider, count in sorted(counts.items()))
    return [
        Problem(
            "webhooks.dead_letters",
            f"{total} webhook event{'s' if total != 1 else ''} dead-lettered, not replayed "
            f"({by_provider}).",
            [
                "Each failed every retry: read its error in the inbox, fix the cause, then "
                "replay it (step-up needed).",
                f"Inbox: {settings.SITE_URL}/admin/webhooks/webhookevent/?status__exact=dead",
            ],
        )
    ]


def signature_failures() -> list[Problem]:
    """Counted in the current and the previous clock hour's buckets, those touched in
    the last hour: the counters are hourly, so "the last hour" is at most two."""
    threshold = settings.WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD
    now = timezone.now()
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    counts = dict(
        WebhookRejection.objects.filter(
            reason__in=SIGNATURE_REASONS,
            hour__gte=current_hour - timedelta(hours=1),
            last_seen_at__gte=now - timedelta(hours=1),
        )
        .values_list("provider")
        .annotate(refused=Sum("count"))
        .order_by("provider")
    )
    problems = []
    for provider, refused in sorted(counts.items()):
        if refused <= threshold:
            continue
        label = Provider(provider).label if provider in Provider.values else provider
        problems.append(
            Problem(
                f"webhooks.signature_failures.{provider}",
                f"{refused} {label} webhook deliveries refused for their signature in the "
                f"last hour (alert above {threshold}).",
                [
                    "Either someone is sending forged events, or the signing secret was "
                    "changed on one side only and real events are being refused.",
                    "Compare the secret in the provider's dashboard with the configured "
                    "ones; the reasons are counted under Webhook rejections in the admin.",
                ],
            )
        )
    return problems


register_watchdog("webhooks.dead_letters", dead_letters)
register_watchdog("webhooks.signature_failures", signature_failures)
