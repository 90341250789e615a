"""Process chosen webhook events again, through the same path as a delivery.

Choose by database id, provider event id, status and/or time range; every replay is
audited with who ran it (--by, a staff email; else the operating-system user).

    manage.py webhooks_replay --status dead --since 2026-11-27T00:00Z --by ops@example.com
    manage.py webhooks_replay --event-id evt_1Q... --inline
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from webhooks import services
from webhooks.models import Provider, WebhookEvent


def _when(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{value!r} is not an ISO 8601 time with a zone (2026-11-27T09:00Z)")
    return parsed


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", type=int, action="append", default=[], dest="ids")
        parser.add_argument("--event-id", action="append", default=[], dest="event_ids")
        parser.add_argument("--provider", choices=Provider.values)
        parser.add_argument("--status", choices=WebhookEvent.Status.values, action="append")
        parser.add_argument("--since", type=_when, help="received at or after (ISO 8601)")
        parser.add_argument("--until", type=_when, help="received before (ISO 8601)")
        parser.add_argument("--by", help="email of the staff member replaying (audited)")
        parser.add_argument("--reason", default="replayed with manage.py webhooks_replay")
        parser.add_argument(
            "--inline", action="store_true", help="process here instead of queueing"
        )
        parser.add_argument("--dry-run", action="store_true", help="list, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        events = WebhookEvent.objects.order_by("received_at")
        filters = {
            "pk__in": options["ids"],
            "event_id__in": options["event_ids"],
            "provider": options["provider"],
            "status__in": options["status"],
            "received_at__gte": options["since"],
            "received_at__lt": options["until"],
        }
        chosen = {key: value for key, value in filters.items() if value}
        if not chosen:
            raise CommandError("Choose events: --id, --event-id, --status, --since or --until.")
        events = events.filter(**chosen)
        actor: Any = f"cli:{getpass.getuser()}"
        if options["by"]:
            # The user model's natural key is the email (looked up by its blind index).
            user_model = get_user_model()
            try:
                actor = user_model._default_manager.get_by_natural_key(options["by"])
            except user_model.DoesNotExist:
                actor = None
            if actor is None or not actor.is_staff:
                raise CommandError("No staff user has that email.")
        selected = list(events)
        if not selected:
            self.stdout.write("No events match.")
            return
        if options["dry_run"]:
            for event in selected:
                self.stdout.write(f"would replay #{event.pk} {event} ({event.status})")
            return
        results = services.events_replay(
            events=selected, actor=actor, reason=options["reason"], inline=options["inline"]
        )
        for event, outcome in results:
            self.stdout.write(f"#{event.pk} {event}: {outcome}")
        self.stdout.write(f"{len(results)} event(s) handled.")
