"""The authorization matrix's world: two tenants, the staff groups, one of everything.

Tenant A and tenant B are each a builder (its owner signed in as ``builder_a`` /
``builder_b``) and a client (``client_a`` / ``client_b``) with a booking of that builder,
paid. Tenant B also has what the back-office handles: a refund, a dispute, a refund
awaiting approval, a data-subject request, an API token, an alert, a reconciliation
finding, webhook inbox rows and audit entries. Routes with an object in their path are
filled with B's (tests/authz/rules.py), so everyone but B's own people is asking for
someone else's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import tokens
from accounts.models import Builder, BuilderMembership, DataSubjectRequest, User
from audit import record
from audit.categories import Category
from audit.checkpoints import checkpoints_write
from audit.models import SecurityEventCount
from bookings.models import Booking, Drift
from core.models import Alert
from payments.models import Dispute, Payment, Refund, RefundApproval
from tests.authz.rules import GROUPS, PRINCIPALS, SUPERUSER
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD
from webhooks.models import WebhookEvent, WebhookRejection


@dataclass
class World:
    """The cast, signed in, and the value of each path parameter a rule may ask for."""

    browsers: dict[str, Client]
    values: dict[str, str]
    tenant_b_secrets: dict[str, str]  # what only B's people and staff may be shown

    def value(self, key: str) -> str:
        if key.startswith("="):
            return key[1:]
        return self.values[key]


def _person(email: str, **fields: Any) -> User:
    return User.objects.create_user(
        email=email,
        password=PASSWORD,
        name=email.split("@", maxsplit=1)[0].title(),
        email_verified_at=timezone.now(),
        **fields,
    )


def _tenant(letter: str, number: int) -> dict[str, Any]:
    studio = Builder.objects.create(name=f"Studio {letter.upper()}", slug=f"studio-{letter}")
    owner = _person(f"owner-{letter}@builder.example")
    BuilderMembership.objects.create(builder=studio, user=owner, role="owner")
    client = _person(f"client-{letter}@client.example")
    event_type = make_event_type(studio, price_amount=8000 + number)
    booking = make_booking(event_type, client, number, status=Booking.Status.CONFIRMED)
    payment = Payment.objects.create(
        booking=booking,
        checkout_session_id=f"cs_test_authz_{letter}",
        payment_intent_id=f"pi_test_authz_{letter}",
        amount=booking.price_amount,
        currency=booking.currency,
        status=Payment.Status.PAID,
    )
    return {
        "builder": studio,
        "owner": owner,
        "client": client,
        "event_type": event_type,
        "booking": booking,
        "payment": payment,
    }


def _back_office(b: dict[str, Any], finance: User) -> dict[str, str]:
    """Tenant B's records as the back-office sees them: ``app.model`` -> pk."""
    now = timezone.now()
    refund = Refund.objects.create(
        payment=b["payment"], amount=1000, reason="goodwill", status=Refund.Status.SUCCEEDED
    )
    approval = RefundApproval.objects.create(
        payment=b["payment"],
        reference=uuid.uuid4(),
        amount=2000,
        currency=b["payment"].currency,
        reason="goodwill",
        requested_by=finance,
        status=RefundApproval.Status.PENDING,
    )
    dispute = Dispute.objects.create(
        stripe_dispute_id="du_test_authz",
        payment=b["payment"],
        amount=b["payment"].amount,
        currency=b["payment"].currency,
        reason="fraudulent",
        status=Dispute.Status.NEEDS_RESPONSE,
        evidence_due_by=now + timedelta(days=3),
        opened_at=now,
    )
    dsr = DataSubjectRequest.objects.create(
        subject=b["client"], kind=DataSubjectRequest.Kind.ACCESS
    )
    entry = record(
        "bookings.booking.viewed",
        category=Category.ACCESS,
        actor=b["client"],
        target=b["booking"],
    )
    event = WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_authz",
        event_type="checkout.session.completed",
        status=WebhookEvent.Status.PROCESSED,
        received_at=now,
        next_attempt_at=now,
        payload="{}",
    )
    rejection = WebhookRejection.objects.create(
        provider="stripe", reason="signature_mismatch", hour=now, last_seen_at=now
    )
    drift = Drift.objects.create(
        kind=Drift.Kind.AMOUNT_MISMATCH,
        key="amount_mismatch:cs_test_authz_b",
        booking=b["booking"],
        payment=b["payment"],
        amount_expected=9000,
        amount_actual=b["payment"].amount,
        window_at=now,
        currency=b["payment"].currency,
    )
    alert = Alert.objects.create(key="payments.refunds_stuck", summary="one refund stuck")
    count = SecurityEventCount.objects.create(
        action="accounts.login.failed", hour=now, count=3, last_seen_at=now
    )
    objects = {
        "accounts.user": b["client"],
        "accounts.builder": b["builder"],
        "accounts.datasubjectrequest": dsr,
        "auth.group": Group.objects.get(name="Support"),
        "core.alert": alert,
        "audit.auditentry": entry,
        "audit.securityeventcount": count,
        "payments.payment": b["payment"],
        "payments.refund": refund,
        "payments.refundapproval": approval,
        "payments.dispute": dispute,
        "bookings.eventtype": b["event_type"],
        "bookings.booking": b["booking"],
        "bookings.drift": drift,
        "webhooks.webhookevent": event,
        "webhooks.webhookrejection": rejection,
    }
    return {label: str(obj.pk) for label, obj in objects.items()}


def _security_records(superuser: User) -> dict[str, str]:
    """What only a superuser reads: sign-in lock-outs, a TOTP device, a checkpoint."""
    seen = {
        "user_agent": "Mozilla/5.0",
        "ip_address": "203.0.113.9",
        "username": "blind-index-authz",
        "http_accept": "text/html",
        "path_info": "/accounts/login/",
    }
    objects = {
        "axes.accessattempt": AccessAttempt.objects.create(
            **seen, get_data="", post_data="", failures_since_start=5
        ),
        "axes.accesslog": AccessLog.objects.create(**seen),
        "axes.accessfailurelog": AccessFailureLog.objects.create(**seen, locked_out=False),
        "otp_totp.totpdevice": TOTPDevice.objects.create(
            user=superuser, name="phone", confirmed=True
        ),
        "audit.auditcheckpoint": checkpoints_write(actor=superuser)[0],
    }
    return {label: str(obj.pk) for label, obj in objects.items()}


def _browser(user: User | None) -> Client:
    browser = Client()  # CSRF checks off: the matrix is about authorization
    if user is not None:
        browser.force_login(user)
    return browser


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Built once per module and worker (a few hundred routes ask it), in a transaction
    rolled back at the module's end; each test's own transaction, and each request's
    savepoint, sit inside it."""
    # The sessions' "last seen" is rolled back with each request, so an idle limit would
    # count from the world's making: the matrix is about rights, not time.
    idle = override_settings(
        SESSION_IDLE_SECONDS=settings.SESSION_ABSOLUTE_SECONDS,
        STAFF_SESSION_IDLE_SECONDS=settings.STAFF_SESSION_ABSOLUTE_SECONDS,
    )
    with django_db_blocker.unblock(), idle:
        outer = transaction.atomic()
        outer._from_testcase = True  # the code under test sees it as the test's own
        with outer:
            yield _build()
            transaction.set_rollback(True)


def _build() -> World:
    tenants = {"a": _tenant("a", 1), "b": _tenant("b", 2)}
    users: dict[str, User | None] = {"anonymous": None}
    for letter, tenant in tenants.items():
        users[f"client_{letter}"] = tenant["client"]
        users[f"builder_{letter}"] = tenant["owner"]
    for group in GROUPS:
        member = _person(f"{group.lower()}@slotpay.example", is_staff=True)
        member.groups.add(Group.objects.get(name=group))
        users[group] = member
    users[SUPERUSER] = User.objects.create_superuser(
        email="root@slotpay.example", password=PASSWORD
    )
    assert set(users) == set(PRINCIPALS)
    b = tenants["b"]
    token = tokens.api_token_create(user=b["client"], name="laptop", scopes=["bookings:read"])
    values = {
        "booking_b.reference": str(b["booking"].reference),
        "booking_b.pk": str(b["booking"].pk),
        "builder_b.slug": b["builder"].slug,
        "event_type_b.pk": str(b["event_type"].pk),
        "token_b.pk": str(token.token.pk),
        "booking_content_type": str(ContentType.objects.get_for_model(Booking).pk),
        "stripe_webhook_token": settings.STRIPE_WEBHOOK_PATH_TOKEN,
        "delivery.pk": "999999",  # the sandbox's dashboards refuse before any lookup
        **_back_office(b, users["Finance"]),  # type: ignore[arg-type]
        **_security_records(users[SUPERUSER]),  # type: ignore[arg-type]
    }
    secrets = {
        "booking reference": str(b["booking"].reference),
        "client's email": b["client"].email,
        "client's name": b["client"].name,
    }
    return World(
        browsers={name: _browser(user) for name, user in users.items()},
        values=values,
        tenant_b_secrets=secrets,
    )
