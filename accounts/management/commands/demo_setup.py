"""Create the demo superuser and builder on a development database (idempotent).

The superuser's password is generated and printed once; it is not stored anywhere
else. Refused outside ENVIRONMENT=development.
"""

from __future__ import annotations

import secrets
from typing import Any

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
