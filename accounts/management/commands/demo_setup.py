"""Create the demo superuser and builder on a development database (idempotent).

The superuser's password is generated and printed once; it is not stored anywhere
else. Refused outside ENVIRONMENT=development.
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


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.ENVIRONMENT != "development":
            raise CommandError("demo_setup only runs with ENVIRONMENT=development.")
        self._sandbox_event_type()
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
            f"  sign in:  http://127.0.0.1:8000/admin/\n{bar}"
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
