"""Demo data for a person to try the whole flow by hand (development only, idempotent).

Two builders selling sessions in EUR and JPY, linked to Calendly sandbox event types
whose redirect comes back to our site; a demo client; one demo staff user per staff
group. Every run gives the demo accounts fresh passwords and prints them (they are
stored nowhere else). Runs ``demo_setup`` first (superuser, sandbox webhooks).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Builder, BuilderMembership, User
from bookings.models import EventType

DEMO_CLIENT_EMAIL = "client@slotpay.localhost"
STAFF_GROUPS = ("Support", "Finance", "Privacy", "Auditor")


@dataclass(frozen=True)
class Offer:
    builder_slug: str
    builder_name: str
    time_zone: str
    event_slug: str
    title: str
    minutes: int
    price_amount: int  # minor units
    currency: str
    question: str


OFFERS = (
    Offer(
        "demo-studio",
        "Demo Studio",
        "Europe/Berlin",
        "consultation",
        "Consultation, 60 minutes",
        60,
        8000,
        "eur",
        "What would you like to build?",
    ),
    Offer(
        "tokyo-works",
        "Tokyo Works",
        "Asia/Tokyo",
        "design-review",
        "Design review, 30 minutes",
        30,
        5000,
        "jpy",
        "Which design should we look at?",
    ),
)


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.ENVIRONMENT != "development":
            raise CommandError("seed_demo only runs with ENVIRONMENT=development.")
        if not apps.is_installed("sandbox.calendly_sandbox"):
            raise CommandError("seed_demo needs the provider sandbox (SANDBOX=true).")
        call_command("demo_setup", stdout=self.stdout)
        passwords: dict[str, str] = {}
        with transaction.atomic():
            for offer in OFFERS:
                builder = self._offer(offer)
                email = f"{offer.builder_slug}@slotpay.localhost"
                passwords[email] = self._person(email, offer.builder_name)
                BuilderMembership.objects.get_or_create(
                    builder=builder,
                    user=User.objects.get(email_index__in=_indexes(email)),
                    defaults={"role": BuilderMembership.Role.OWNER},
                )
            passwords[DEMO_CLIENT_EMAIL] = self._person(DEMO_CLIENT_EMAIL, "Demo Client")
            for group_name in STAFF_GROUPS:
                email = f"{group_name.lower()}@slotpay.localhost"
                passwords[email] = self._person(email, f"Demo {group_name}", staff=group_name)
        self._print(passwords)

    def _offer(self, offer: Offer) -> Builder:
        from sandbox.calendly_sandbox.models import EventType as SandboxEventType
        from sandbox.calendly_sandbox.resources import Urls, event_type_resource
        from sandbox.calendly_sandbox.services import host_with_event_type_create

        redirect = f"{settings.SITE_URL}/bookings/scheduled/"
        remote = SandboxEventType.objects.filter(
            host__slug=offer.builder_slug, slug=offer.event_slug
        ).first()
        if remote is None:
            remote = host_with_event_type_create(
                host_name=offer.builder_name,
                host_email=f"{offer.builder_slug}@slotpay.localhost",
                host_slug=offer.builder_slug,
                host_timezone=offer.time_zone,
                event_name=offer.title,
                event_slug=offer.event_slug,
                duration=offer.minutes,
                question=offer.question,
                redirect_url=redirect,
            )
        elif remote.redirect_url != redirect:
            remote.redirect_url = redirect
            remote.save(update_fields=["redirect_url"])
        resource = event_type_resource(remote, Urls(site=settings.SITE_URL))
        builder, _ = Builder.objects.get_or_create(
            slug=offer.builder_slug,
            defaults={"name": offer.builder_name, "time_zone": offer.time_zone},
        )
        EventType.objects.update_or_create(
            calendly_event_type_uri=resource["uri"],
            defaults={
                "builder": builder,
                "scheduling_url": resource["scheduling_url"],
                "title": offer.title,
                "duration_minutes": offer.minutes,
                "price_amount": offer.price_amount,
                "currency": offer.currency,
                "active": True,
            },
        )
        return builder

    def _person(self, email: str, name: str, *, staff: str | None = None) -> str:
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(email_index__in=_indexes(email)).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password, name=name)
        else:
            user.set_password(password)
        if staff:
            user.is_staff = True
            user.groups.add(Group.objects.get_or_create(name=staff)[0])
        user.save()
        return password

    def _print(self, passwords: dict[str, str]) -> None:
        bar = "=" * 64
        lines = [bar, "Demo accounts (new passwords on every run, stored nowhere else):"]
        for email, password in passwords.items():
            lines.append(f"  {email:<32} {password}")
        lines += [
            f"Clients sign in at {settings.SITE_URL}/accounts/login/ and book from "
            f"{settings.SITE_URL}/builders/",
            f"Staff sign in at {settings.SITE_URL}/admin/",
            "Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.",
            bar,
        ]
        self.stdout.write("\n".join(lines))


def _indexes(email: str) -> list[str]:
    """The email's blind index under every configured key (a re-index may be under way)."""
    from core.encryption import blind_indexes

    return blind_indexes(email)
