"""Create the demo superuser and builder on a development database (idempotent).

The superuser's password is generated and printed once; it is not stored anywhere
else. With the Calendly sandbox installed, it also keeps a scheduling page and a
webhook subscription to our Calendly endpoint. Refused outside ENVIRONMENT=development.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Builder, BuilderMembership, User

DEMO_ADMIN_EMAIL = "admin@slotpay.localhost"
DEMO_BUILDER_EMAIL = "builder@slotpay.localhost"
# What the demo subscription delivers: the Calendly events the bookings app handles.
DEMO_CALENDLY_EVENTS = ["invitee.created", "invitee.canceled", "invitee_no_show.created"]


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.ENVIRONMENT != "development":
            raise CommandError("demo_setup only runs with ENVIRONMENT=development.")
        self._sandbox_event_type()
        self._sandbox_webhooks()
        with transaction.atomic():
            if User.objects.filter(is_superuser=True).exists():
                self.stdout.write("Demo data already present (superuser exists).")
                return
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(
                email=DEMO_ADMIN_EMAIL, password=password, name="Demo Admin"
            )
            builder_user = User.objects.create_user(
                email=DEMO_BUILDER_EMAIL, password=secrets.token_urlsafe(16), name="Demo Builder"
            )
            builder, _ = Builder.objects.get_or_create(
                slug="demo-studio",
                defaults={"name": "Demo Studio", "time_zone": "Europe/Berlin"},
            )
            BuilderMembership.objects.get_or_create(
                builder=builder, user=builder_user, defaults={"role": "owner"}
            )
        bar = "=" * 64
        self.stdout.write(
            f"{bar}\nDemo superuser created (shown once, not stored):\n"
            f"  email:    {DEMO_ADMIN_EMAIL}\n  password: {password}\n"
            f"  sign in:  {settings.SITE_URL}/admin/\n{bar}"
        )

    def _sandbox_event_type(self) -> None:
        """A Calendly sandbox host and event type for the demo builder, once."""
        if not apps.is_installed("sandbox.calendly_sandbox"):
            return
        from sandbox.calendly_sandbox.models import EventType
        from sandbox.calendly_sandbox.services import host_with_event_type_create

        if not EventType.objects.filter(host__slug="demo-studio", slug="consultation").exists():
            host_with_event_type_create(
                host_name="Demo Studio",
                host_email=DEMO_BUILDER_EMAIL,
                host_slug="demo-studio",
                host_timezone="Europe/Berlin",
                event_name="Consultation, 60 minutes",
                event_slug="consultation",
                duration=60,
                question="What would you like to build?",
            )
        page = "/sandbox/calendly/demo-studio/consultation/"
        self.stdout.write(f"Sandbox scheduling page: {settings.SITE_URL}{page}")

    def _sandbox_webhooks(self) -> None:
        """One Calendly sandbox subscription posting to our endpoint, kept current.

        Made through the sandbox's models, as its API would (the server is not up
        yet while this runs). A subscription of the demo organization to an earlier
        token of our endpoint is updated in place; extra ones are removed.
        """
        if not apps.is_installed("sandbox.calendly_sandbox"):
            return
        from sandbox import db
        from sandbox.calendly_sandbox.models import Host, WebhookSubscription

        prefix = f"{settings.SITE_URL}/webhooks/calendly/"
        token = settings.CALENDLY_WEBHOOK_PATH_TOKEN
        keys = settings.CALENDLY_WEBHOOK_SIGNING_KEYS
        if not token or not keys:
            self.stdout.write(
                "Calendly sandbox webhooks: not subscribed "
                "(CALENDLY_WEBHOOK_PATH_TOKEN or CALENDLY_WEBHOOK_SIGNING_KEYS is unset)."
            )
            return
        wanted = {
            "callback_url": f"{prefix}{token}/",
            "events": list(DEMO_CALENDLY_EVENTS),
            "signing_key": keys[0],
            "state": WebhookSubscription.State.ACTIVE,
        }
        with db.atomic():
            organization = Host.objects.get(slug="demo-studio").organization
            existing = list(
                WebhookSubscription.objects.select_for_update()
                .filter(
                    organization=organization,
                    scope=WebhookSubscription.Scope.ORGANIZATION,
                    callback_url__startswith=prefix,
                )
                .order_by("created_at", "id")
            )
            if existing:
                subscription, stale = existing[0], existing[1:]
                for extra in stale:
                    extra.delete()
                changed = [k for k, v in wanted.items() if getattr(subscription, k) != v]
                for name in changed:
                    setattr(subscription, name, wanted[name])
                if changed:
                    subscription.save(update_fields=[*changed, "updated_at"])
            else:
                WebhookSubscription.objects.create(
                    organization=organization,
                    scope=WebhookSubscription.Scope.ORGANIZATION,
                    **wanted,
                )
        stripe_url = settings.SANDBOX_STRIPE_WEBHOOK_URL
        if settings.STRIPE_WEBHOOK_PATH_TOKEN:
            stripe_url = stripe_url.replace(settings.STRIPE_WEBHOOK_PATH_TOKEN, "<token>")
        self.stdout.write(
            f"Sandbox webhooks: Stripe delivers to {stripe_url}, "
            f"Calendly to {prefix}<token>/ (path tokens in .env)"
        )
