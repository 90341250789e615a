"""The restricted Stripe key the README prescribes is enough for every call Slotpay makes,
and every permission in it is needed.

Every call the gateway (payments/stripe_gateway.py, the one module that talks to
Stripe) can make is listed here with the permission Stripe checks for it; the list is
compared with the gateway's source, so a new call cannot be forgotten. The calls then
run, over HTTP, against the Stripe sandbox, which enforces a restricted key's
permissions per resource as Stripe does (sandbox/stripe_sandbox/api.py): the
webhook handlers' reads (sessions, PaymentIntents, charges, disputes), refunds,
erasure (customers, redaction jobs) and the reconciliation's lists (events, sessions,
refunds) all go through these functions.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import outgoing
from payments import stripe_gateway
from sandbox.stripe_sandbox import services as sandbox
from sandbox.stripe_sandbox.forms import RESOURCES
from sandbox.stripe_sandbox.models import RestrictedKey, StripeObject
from tests.sandbox.stripe.helpers import bring_due_work_forward, new_session, pay, stripe_sandbox

__all__ = ["stripe_sandbox"]

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
READ, WRITE = "read", "write"
LEVELS = ("none", READ, WRITE)

# Each call of the gateway (its operation name in logs) and what Stripe checks for it.
OPERATIONS: dict[str, tuple[str, str]] = {
    "checkout.sessions.create": ("checkout_sessions", WRITE),
    "checkout.sessions.retrieve": ("checkout_sessions", READ),
    "checkout.sessions.expire": ("checkout_sessions", WRITE),
    "checkout.sessions.list": ("checkout_sessions", READ),
    "payment_intents.retrieve": ("payment_intents", READ),
    "charges.retrieve": ("charges", READ),
    "disputes.retrieve": ("disputes", READ),
    "refunds.create": ("refunds", WRITE),
    "refunds.retrieve": ("refunds", READ),
    "refunds.list": ("refunds", READ),
    "customers.retrieve": ("customers", READ),
    "customers.delete": ("customers", WRITE),
    "privacy.redaction_jobs.create": ("privacy_redaction_jobs", WRITE),
    "privacy.redaction_jobs.retrieve": ("privacy_redaction_jobs", READ),
    "privacy.redaction_jobs.run": ("privacy_redaction_jobs", WRITE),
    "events.list": ("events", READ),
    "events.retrieve": ("events", READ),
}


def readme_permissions() -> dict[str, str]:
    """The restricted key's permissions as README.md lists them, by sandbox resource."""
    text = re.sub(r"\s+", " ", (ROOT / "README.md").read_text(encoding="utf-8"))
    found = re.search(
        r"create a \*\*restricted key\*\* with only what Slotpay uses: (.*?)\. ", text
    )
    assert found, "README.md no longer lists the restricted key's permissions"
    by_label = {label: resource for resource, label in RESOURCES}
    listed = re.findall(r"(?:^|, )([A-Za-z ]+?) \((read|write)\b", found.group(1))
    assert listed, found.group(1)
    return {by_label[label]: access for label, access in listed}


def gateway_operations() -> set[str]:
    source = (ROOT / "payments" / "stripe_gateway.py").read_text(encoding="utf-8")
    return set(re.findall(r"\b_(?:call|raw)\(\s*\"([\w.]+)\"", source))


def test_every_call_of_the_gateway_is_accounted_for():
    assert gateway_operations() == set(OPERATIONS)


def test_the_readme_lists_exactly_the_permissions_the_calls_need():
    needed: dict[str, str] = {}
    for resource, access in OPERATIONS.values():
        if needed.get(resource) != WRITE:
            needed[resource] = access
    assert readme_permissions() == needed


class World:
    """What the calls act on, made with the sandbox's unrestricted test key."""

    def __init__(self) -> None:
        self.paid = _paid("bk_perm_paid")
        self.erased = _paid("bk_perm_erased")
        disputed = new_session("bk_perm_disputed")
        assert pay(disputed.url, "4000 0000 0000 0259").status_code == 303
        bring_due_work_forward()  # the dispute opens (and open sessions would expire)
        sandbox.run_due()
        self.dispute_id = StripeObject.objects.get(object="dispute").id
        self.open = new_session("bk_perm_open")
        self.refund = stripe_gateway.create_refund(
            refund_ref="rf_perm_setup", payment_intent=self.paid.payment_intent_id, amount=100
        )
        self.event_id = stripe_gateway.list_events(limit=1).events[0].id
        self.intent = stripe_gateway.retrieve_payment_intent(self.paid.payment_intent_id)
        # A job created, not yet run: the gateway's own two steps, one at a time.
        self.job_id = stripe_gateway._raw(
            "privacy.redaction_jobs.create",
            "/v1/privacy/redaction_jobs",
            objects={"customers": [self.erased.customer_id]},
            validation_behavior="fix",
            idempotency_key="slotpay:redaction:perm-setup",
        )["id"]

    def calls(self) -> dict[str, Callable[[], Any]]:
        """One call per operation, as the gateway makes it."""
        tag = secrets.token_hex(4)
        return {
            "checkout.sessions.create": lambda: new_session(f"bk_perm_{tag}"),
            "checkout.sessions.retrieve": lambda: stripe_gateway.retrieve_checkout_session(
                self.paid.id
            ),
            "checkout.sessions.expire": lambda: stripe_gateway.expire_checkout_session(
                self.open.id
            ),
            "checkout.sessions.list": lambda: list(stripe_gateway.iter_checkout_sessions()),
            "payment_intents.retrieve": lambda: stripe_gateway.retrieve_payment_intent(
                self.paid.payment_intent_id
            ),
            "charges.retrieve": lambda: stripe_gateway.retrieve_charge(
                self.intent.latest_charge_id
            ),
            "disputes.retrieve": lambda: stripe_gateway.retrieve_dispute(self.dispute_id),
            "refunds.create": lambda: stripe_gateway.create_refund(
                refund_ref=f"rf_perm_{tag}", payment_intent=self.paid.payment_intent_id, amount=100
            ),
            "refunds.retrieve": lambda: stripe_gateway.retrieve_refund(self.refund.id),
            "refunds.list": lambda: list(stripe_gateway.iter_refunds()),
            "customers.retrieve": lambda: stripe_gateway.retrieve_customer(self.paid.customer_id),
            "customers.delete": lambda: stripe_gateway.delete_customer(self.erased.customer_id),
            # Creates a job and runs it (the sandbox's jobs are ready at once).
            "privacy.redaction_jobs.create": lambda: stripe_gateway.redact_objects(
                job_ref=f"perm-{tag}", objects={"customers": [self.erased.customer_id]}
            ),
            # redact_objects' second step on its own, so that it is seen even when the
            # first is refused.
            "privacy.redaction_jobs.run": lambda: stripe_gateway._raw(
                "privacy.redaction_jobs.run",
                f"/v1/privacy/redaction_jobs/{self.job_id}/run",
                idempotency_key=f"slotpay:redaction-run:perm-setup-{tag}",
            ),
            # The gateway reads a job back when Stripe is still validating it, which the
            # sandbox never is: the same call, made directly.
            "privacy.redaction_jobs.retrieve": lambda: stripe_gateway._raw(
                "privacy.redaction_jobs.retrieve",
                f"/v1/privacy/redaction_jobs/{self.job_id}",
                method="get",
            ),
            "events.list": lambda: list(stripe_gateway.iter_events()),
            "events.retrieve": lambda: stripe_gateway.retrieve_event(self.event_id),
        }


def _paid(booking_ref: str) -> stripe_gateway.CheckoutSession:
    session = new_session(booking_ref)
    assert pay(session.url).status_code == 303
    return stripe_gateway.retrieve_checkout_session(session.id)


def _use_restricted_key(settings: Any, permissions: dict[str, str]) -> str:
    key = RestrictedKey.objects.create(
        name="slotpay", key=f"rk_test_{secrets.token_urlsafe(24)}", permissions=permissions
    ).key
    settings.STRIPE_API_KEY = key
    return key


def _succeeded(operation: str) -> int:
    return sum(
        count
        for (provider, op, outcome), count in outgoing.CALLS.items()
        if provider == "stripe" and op == operation and outcome.startswith("2")
    )


def test_the_readme_key_is_enough_for_every_call(settings, stripe_sandbox):
    world = World()
    _use_restricted_key(settings, readme_permissions())
    before = {operation: _succeeded(operation) for operation in OPERATIONS}

    refused = {}
    for operation, call in world.calls().items():
        try:
            call()
        except stripe_gateway.PermissionDenied as exc:
            refused[operation] = str(exc)

    assert refused == {}
    # Every operation reached Stripe and was answered 2xx with this key.
    assert [op for op in OPERATIONS if _succeeded(op) <= before[op]] == []


def _one_fewer() -> list[Any]:
    """Each README permission lowered one step (write to read, read to none)."""
    cases = []
    for resource, access in readme_permissions().items():
        lowered = LEVELS[LEVELS.index(access) - 1]
        cases.append(pytest.param(resource, lowered, id=f"{resource}-{access}-to-{lowered}"))
    return cases


@pytest.mark.parametrize(("resource", "lowered"), _one_fewer())
def test_each_permission_is_needed(settings, stripe_sandbox, resource, lowered):
    world = World()
    permissions = readme_permissions()
    if lowered == "none":
        del permissions[resource]
    else:
        permissions[resource] = lowered
    key = _use_restricted_key(settings, permissions)

    refused = {}
    for operation, call in world.calls().items():
        try:
            call()
        except stripe_gateway.PermissionDenied as exc:
            refused[operation] = exc

    needs = {
        op
        for op, (needed, access) in OPERATIONS.items()
        if needed == resource and LEVELS.index(access) > LEVELS.index(lowered)
    }
    assert needs, "the permission would not be needed"
    assert set(refused) == needs
    for exc in refused.values():
        assert exc.http_status == 403
        assert key not in str(exc)
