"""Stripe, behind typed functions: the only module of Slotpay that imports ``stripe``.

Every call is wrapped in ``config.outgoing.provider_call`` (logged with the key's
label, never the key), every write carries an idempotency key derived from our own
ids (so a retry, ours or stripe-python's, can never charge or refund twice), and
Stripe's errors come out as :class:`PaymentProviderError` subclasses that keep
Stripe's code and request id but none of the request's personal data.

Settings are read at call time: STRIPE_API_KEY, and STRIPE_API_BASE (empty: Stripe
itself; with the sandbox: its stand-in on this site).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import stripe
from django.conf import settings

from config.outgoing import Call, key_label, provider_call
from core.masking import scrub_text
from core.providers import ProviderError

# Pinned so that a library upgrade never changes the shapes we parse; move it on purpose
# (and re-run the sandbox contract tests) together with the stripe package.
API_VERSION = "2026-10-28.endive"
MAX_NETWORK_RETRIES = 2
TIMEOUT = (5, 30)  # seconds: connect, read

T = TypeVar("T")


# --- Errors -------------------------------------------------------------------------


class PaymentProviderError(ProviderError):
    """Stripe refused or failed a call. Carries Stripe's identifiers, no personal data.

    Not ``permanent`` unless a subclass says so (an unknown kind of failure is retried).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.param = param
        self.decline_code = decline_code

    def __str__(self) -> str:
        parts = [self.args[0] if self.args else type(self).__name__]
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class CardDeclined(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """The card was refused (``card_error``)."""

    permanent = True


class InvalidRequest(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """Stripe rejected the parameters: a bug on our side, or a state Stripe refuses."""

    permanent = True


class NotFound(InvalidRequest):
    """No such object (``resource_missing``)."""


class IdempotencyConflict(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """The idempotency key was used before with different parameters.

    Not permanent: our keys derive from our ids, so this is our bug, to surface as a
    dead letter (an alert) and replay once fixed, not to drop.
    """


class AuthenticationFailed(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """The API key is missing, unknown, revoked or of the wrong mode."""


class PermissionDenied(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """The (restricted) key may not do this."""


class ProviderUnavailable(PaymentProviderError):  # noqa: N818 (named for the outcome callers handle)
    """Network failure, rate limit or a Stripe-side error: retry later."""


def _translate(exc: stripe.StripeError) -> PaymentProviderError:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or exc.code
    kwargs: dict[str, Any] = {
        "code": code,
        "http_status": exc.http_status,
        "request_id": exc.request_id,
        "param": getattr(error, "param", None),
        "decline_code": getattr(error, "decline_code", None),
    }
    # Stripe's messages name objects by id, but may echo a parameter (an email address):
    # keep them scrubbed, and never the response body.
    message = scrub_text(exc.user_message or type(exc).__name__)
    if isinstance(exc, stripe.InvalidRequestError) and (
        code == "resource_missing" or exc.http_status == 404
    ):
        return NotFound(message, **kwargs)
    for stripe_class, ours in _ERRORS:
        if isinstance(exc, stripe_class):
            return ours(message, **kwargs)
    return PaymentProviderError(message, **kwargs)


# First match wins (CardError and the rest are distinct StripeError subclasses).
_ERRORS: tuple[tuple[type[stripe.StripeError], type[PaymentProviderError]], ...] = (
    (stripe.CardError, CardDeclined),
    (stripe.IdempotencyError, IdempotencyConflict),
    (stripe.InvalidRequestError, InvalidRequest),
    (stripe.PermissionError, PermissionDenied),
    (stripe.AuthenticationError, AuthenticationFailed),
    (stripe.APIConnectionError, ProviderUnavailable),
    (stripe.RateLimitError, ProviderUnavailable),
    (stripe.APIError, ProviderUnavailable),
)


# --- Typed results ------------------------------------------------------------------


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _id(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object's id."""
    if value is None or isinstance(value, str):
        return value
    return str(value["id"])


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str | None
    payment_status: str
    amount_total: int | None
    amount_tax: int
    currency: str | None
    payment_intent_id: str | None
    customer_id: str | None
    expires_at: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    # Filled when read with the PaymentIntent expanded (retrieve_checkout_session's
    # ``with_payment``); None otherwise, or when the session has no PaymentIntent.
    payment_intent: PaymentIntent | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> CheckoutSession:
        data = _plain(obj)
        totals = data.get("total_details") or {}
        intent = data.get("payment_intent")
        return cls(
            id=data["id"],
            url=data.get("url"),
            status=data.get("status"),
            payment_status=data["payment_status"],
            amount_total=data.get("amount_total"),
            amount_tax=totals.get("amount_tax") or 0,
            currency=data.get("currency"),
            payment_intent_id=_id(data.get("payment_intent")),
            customer_id=_id(data.get("customer")),
            expires_at=_ts(data.get("expires_at")),
            metadata=dict(data.get("metadata") or {}),
            created=_ts(data.get("created")),
            payment_intent=PaymentIntent.from_stripe(intent) if isinstance(intent, dict) else None,
        )


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    latest_charge_id: str | None
    customer_id: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Filled when read with the latest charge expanded (with its refunds, as
    # retrieve_charge reads a charge); None otherwise, or when there is no charge.
    latest_charge: Charge | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> PaymentIntent:
        data = _plain(obj)
        charge = data.get("latest_charge")
        return cls(
            id=data["id"],
            status=data["status"],
            amount=data["amount"],
            amount_received=data.get("amount_received") or 0,
            currency=data["currency"],
            latest_charge_id=_id(data.get("latest_charge")),
            customer_id=_id(data.get("customer")),
            metadata=dict(data.get("metadata") or {}),
            latest_charge=Charge.from_stripe(charge) if isinstance(charge, dict) else None,
        )


@dataclass(frozen=True)
class Charge:
    id: str
    amount: int
    amount_refunded: int
    currency: str
    status: str
    brand: str | None
    last4: str | None
    receipt_url: str | None
    risk_level: str | None
    disputed: bool
    refunded: bool
    payment_intent_id: str | None
    # Filled when read with the refunds expanded (retrieve_charge does).
    refunds: tuple[Refund, ...] = ()
    more_refunds: bool = False

    @classmethod
    def from_stripe(cls, obj: Any) -> Charge:
        data = _plain(obj)
        details = data.get("payment_method_details") or {}
        method = details.get(details.get("type") or "", {}) or {}
        outcome = data.get("outcome") or {}
        return cls(
            id=data["id"],
            amount=data["amount"],
            amount_refunded=data.get("amount_refunded") or 0,
            currency=data["currency"],
            status=data["status"],
            brand=method.get("brand"),
            last4=method.get("last4"),
            receipt_url=data.get("receipt_url"),
            risk_level=outcome.get("risk_level"),
            disputed=bool(data.get("disputed")),
            refunded=bool(data.get("refunded")),
            payment_intent_id=_id(data.get("payment_intent")),
            refunds=tuple(
                Refund.from_stripe(r) for r in (data.get("refunds") or {}).get("data", ())
            ),
            more_refunds=bool((data.get("refunds") or {}).get("has_more")),
        )


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    currency: str
    status: str | None
    charge_id: str | None
    payment_intent_id: str | None
    reason: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> Refund:
        data = _plain(obj)
        return cls(
            id=data["id"],
            amount=data["amount"],
            currency=data["currency"],
            status=data.get("status"),
            charge_id=_id(data.get("charge")),
            payment_intent_id=_id(data.get("payment_intent")),
            reason=data.get("reason"),
            metadata=dict(data.get("metadata") or {}),
            created=_ts(data.get("created")),
        )


@dataclass(frozen=True)
class DisputeBalanceTransaction:
    """Money a dispute moved: negative when funds were withdrawn (the amount plus
    Stripe's fee), positive when reinstated after a won dispute."""

    id: str
    amount: int
    fee: int
    net: int
    currency: str
    created: datetime | None

    @classmethod
    def from_stripe(cls, obj: Any) -> DisputeBalanceTransaction:
        data: dict[str, Any] = {"id": obj} if isinstance(obj, str) else _plain(obj)
        return cls(
            id=data["id"],
            amount=int(data.get("amount") or 0),
            fee=int(data.get("fee") or 0),
            net=int(data.get("net") or 0),
            currency=str(data.get("currency") or ""),
            created=_ts(data.get("created")),
        )


@dataclass(frozen=True)
class Dispute:
    id: str
    charge_id: str | None
    payment_intent_id: str | None
    amount: int
    currency: str
    status: str
    reason: str | None
    created: datetime | None = None
    evidence_due_by: datetime | None = None
    is_charge_refundable: bool = False
    balance_transactions: tuple[DisputeBalanceTransaction, ...] = ()

    @classmethod
    def from_stripe(cls, obj: Any) -> Dispute:
        data = _plain(obj)
        details = data.get("evidence_details") or {}
        return cls(
            id=data["id"],
            charge_id=_id(data.get("charge")),
            payment_intent_id=_id(data.get("payment_intent")),
            amount=data["amount"],
            currency=data["currency"],
            status=data["status"],
            reason=data.get("reason"),
            created=_ts(data.get("created")),
            evidence_due_by=_ts(details.get("due_by")),
            is_charge_refundable=bool(data.get("is_charge_refundable")),
            balance_transactions=tuple(
                DisputeBalanceTransaction.from_stripe(item)
                for item in data.get("balance_transactions") or []
            ),
        )


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: datetime
    data_object: Mapping[str, Any]
    api_version: str | None = None
    # The whole event as Stripe sent it: what a webhook delivery of it carries, so that
    # reconciliation can store an event it never received exactly as a delivery would.
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_stripe(cls, obj: Any) -> Event:
        data = _plain(obj)
        created = _ts(data["created"])
        assert created is not None  # noqa: S101 (Stripe always sends it)
        return cls(
            id=data["id"],
            type=data["type"],
            created=created,
            data_object=data["data"]["object"],
            api_version=data.get("api_version"),
            body=data,
        )


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.events[-1].id if self.events else None


ItemT = TypeVar("ItemT", CheckoutSession, Refund)


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of a Stripe list, newest first; ``last_id`` is the next ``starting_after``."""

    items: list[ItemT]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.items[-1].id if self.items else None


# --- The client ---------------------------------------------------------------------


_clients: dict[tuple[str, str], tuple[stripe.StripeClient, stripe.RequestsClient]] = {}
_clients_lock = threading.Lock()


def client() -> stripe.StripeClient:
    """The client for the current settings (tests point STRIPE_API_BASE elsewhere).

    One per (key, base), so connections are pooled; a rotated key gets a new client.
    """
    api_key, api_base = settings.STRIPE_API_KEY, settings.STRIPE_API_BASE or ""
    with _clients_lock:
        found = _clients.get((api_key, api_base))
        if found is None:
            http_client = stripe.RequestsClient(timeout=TIMEOUT)
            found = _clients[(api_key, api_base)] = (
                stripe.StripeClient(
                    api_key,
                    base_addresses={"api": api_base} if api_base else {},
                    stripe_version=API_VERSION,
                    max_network_retries=MAX_NETWORK_RETRIES,
                    http_client=http_client,
                ),
                http_client,
            )
    return found[0]


def close_clients() -> None:
    """Drop the clients and close this thread's pooled connections (tests, shutdown)."""
    with _clients_lock:
        closing = list(_clients.values())
        _clients.clear()
    for _, http_client in closing:
        http_client.close()  # type: ignore[no-untyped-call]  # stripe's RequestsClient


def _call(operation: str, request: Callable[[stripe.StripeClient], T]) -> T:
    with provider_call("stripe", operation, key_label=key_label(settings.STRIPE_API_KEY)) as call:
        try:
            result = request(client())
        except stripe.StripeError as exc:
            call.status = exc.http_status
            raise _translate(exc) from None
        _record_status(call, result)
        return result


def _record_status(call: Call, result: Any) -> None:
    # A raw request's answer is the response itself.
    response = result if isinstance(result, stripe.StripeResponse) else None
    response = response or getattr(result, "last_response", None)
    call.status = getattr(response, "code", None) or 200


def _options(idempotency_key: str | None = None) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _require(value: str, what: str) -> str:
    if not value or not isinstance(value, str):
        raise ValueError(f"{what} is required")
    return value


# --- Operations ---------------------------------------------------------------------


def create_checkout_session(
    *,
    booking_ref: str,
    item_name: str,
    amount: int,
    currency: str,
    success_url: str,
    cancel_url: str,
    refund_terms: str,
    automatic_tax: bool = False,
    customer_email: str | None = None,
    expires_at: datetime | None = None,
) -> CheckoutSession:
    """One hosted Checkout Session for a booking, in minor units of ``currency``.

    Idempotent per booking: calling it again for the same booking with the same
    arguments returns the same session; with different arguments it raises
    IdempotencyConflict (start a new booking reference instead). Only our opaque
    booking reference goes into Stripe's metadata.
    """
    _require(booking_ref, "booking_ref")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValueError("amount must be a positive integer in minor units")
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError("currency must be a three-letter ISO code")
    if "{CHECKOUT_SESSION_ID}" not in success_url:
        raise ValueError("success_url must carry {CHECKOUT_SESSION_ID}")
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": amount,
                    "product_data": {"name": item_name},
                    # Tax is added on top of the builder's price.
                    "tax_behavior": "exclusive",
                },
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": booking_ref,
        "metadata": {"booking": booking_ref},
        "payment_intent_data": {"metadata": {"booking": booking_ref}},
        "automatic_tax": {"enabled": automatic_tax},
        "custom_text": {"submit": {"message": refund_terms}},
        "customer_creation": "always",
    }
    if customer_email:
        params["customer_email"] = customer_email
    if expires_at is not None:
        params["expires_at"] = int(expires_at.timestamp())
    session = _call(
        "checkout.sessions.create",
        lambda c: c.v1.checkout.sessions.create(
            params,  # type: ignore[arg-type]
            _options(f"slotpay:checkout:{booking_ref}"),  # type: ignore[arg-type]
        ),
    )
    return CheckoutSession.from_stripe(session)


# The session's PaymentIntent and its latest charge with the charge's refunds: what
# settling a paid session reads, in one request instead of three (Stripe expands up to
# four levels; ``refunds`` is left out of a charge unless expanded).
PAYMENT_EXPANSION = ("payment_intent.latest_charge.refunds",)


def retrieve_checkout_session(session_id: str, *, with_payment: bool = False) -> CheckoutSession:
    """A session as Stripe reports it now. ``with_payment``: with its PaymentIntent
    (``payment_intent``) and that intent's latest charge (``latest_charge``, with its
    refunds) read in the same request, one consistent answer."""
    _require(session_id, "session_id")
    params: dict[str, Any] = {"expand": list(PAYMENT_EXPANSION)} if with_payment else {}
    return CheckoutSession.from_stripe(
        _call(
            "checkout.sessions.retrieve",
            lambda c: c.v1.checkout.sessions.retrieve(session_id, params),  # type: ignore[arg-type]
        )
    )


def expire_checkout_session(session_id: str) -> CheckoutSession:
    """Expire an open session (e.g. the booking was cancelled before payment)."""
    _require(session_id, "session_id")
    return CheckoutSession.from_stripe(
        _call(
            "checkout.sessions.expire",
            lambda c: c.v1.checkout.sessions.expire(
                session_id,
                options=_options(f"slotpay:expire:{session_id}"),  # type: ignore[arg-type]
            ),
        )
    )


def retrieve_payment_intent(payment_intent_id: str) -> PaymentIntent:
    _require(payment_intent_id, "payment_intent_id")
    return PaymentIntent.from_stripe(
        _call(
            "payment_intents.retrieve", lambda c: c.v1.payment_intents.retrieve(payment_intent_id)
        )
    )


def retrieve_charge(charge_id: str) -> Charge:
    """A charge with its refunds (expanded: Stripe leaves them out by default)."""
    _require(charge_id, "charge_id")
    return Charge.from_stripe(
        _call(
            "charges.retrieve",
            lambda c: c.v1.charges.retrieve(charge_id, {"expand": ["refunds"]}),
        )
    )


def retrieve_dispute(dispute_id: str) -> Dispute:
    _require(dispute_id, "dispute_id")
    return Dispute.from_stripe(
        _call("disputes.retrieve", lambda c: c.v1.disputes.retrieve(dispute_id))
    )


def create_refund(
    *,
    refund_ref: str,
    payment_intent: str | None = None,
    charge: str | None = None,
    amount: int | None = None,
    reason: str | None = None,
) -> Refund:
    """Refund ``amount`` (minor units; None = what remains) of a payment, once per
    ``refund_ref`` (our refund's id): a retry returns the same Stripe refund."""
    _require(refund_ref, "refund_ref")
    if bool(payment_intent) == bool(charge):
        raise ValueError("give exactly one of payment_intent or charge")
    if amount is not None and (not isinstance(amount, int) or amount <= 0):
        raise ValueError("amount must be a positive integer in minor units")
    params: dict[str, Any] = {"metadata": {"refund": refund_ref}}
    if payment_intent:
        params["payment_intent"] = payment_intent
    else:
        params["charge"] = charge
    if amount is not None:
        params["amount"] = amount
    if reason is not None:
        params["reason"] = reason
    return Refund.from_stripe(
        _call(
            "refunds.create",
            lambda c: c.v1.refunds.create(
                params,  # type: ignore[arg-type]
                _options(f"slotpay:refund:{refund_ref}"),  # type: ignore[arg-type]
            ),
        )
    )


def retrieve_refund(refund_id: str) -> Refund:
    _require(refund_id, "refund_id")
    return Refund.from_stripe(_call("refunds.retrieve", lambda c: c.v1.refunds.retrieve(refund_id)))


def delete_customer(customer_id: str) -> bool:
    """Erase a customer at Stripe (data-subject requests). False if it was already gone."""
    _require(customer_id, "customer_id")
    try:
        _call(
            "customers.delete",
            lambda c: c.v1.customers.delete(
                customer_id,
                options=_options(f"slotpay:customer-delete:{customer_id}"),  # type: ignore[arg-type]
            ),
        )
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class Customer:
    id: str
    deleted: bool
    email: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    created: datetime | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> Customer:
        data = _plain(obj)
        return cls(
            id=data["id"],
            deleted=bool(data.get("deleted")),
            email=data.get("email"),
            name=data.get("name"),
            phone=data.get("phone"),
            created=_ts(data.get("created")),
        )


def retrieve_customer(customer_id: str) -> Customer:
    """A customer as Stripe holds it (a deleted one comes back as a tombstone)."""
    _require(customer_id, "customer_id")
    return Customer.from_stripe(
        _call("customers.retrieve", lambda c: c.v1.customers.retrieve(customer_id))
    )


@dataclass(frozen=True)
class RedactionJob:
    id: str
    status: str

    @property
    def finished(self) -> bool:
        return self.status in ("redacting", "succeeded")


# The objects a redaction job takes, by the parameter Stripe names them with.
REDACTABLE = ("customers", "checkout_sessions", "payment_intents", "charges")


def redact_objects(*, job_ref: str, objects: Mapping[str, Sequence[str]]) -> RedactionJob:
    """Ask Stripe to redact the personal data on these objects and on what relates to
    them (events, request logs): a redaction job (public preview), created then run.

    Deleting a customer leaves its Checkout Sessions, PaymentIntents and charges
    holding the email and name; this removes them. Amounts and ids stay. A job that
    is not ready yet (Stripe still validating) comes back unfinished: call again.
    Once per ``job_ref`` (our request's step): a retry finds the same job.
    """
    _require(job_ref, "job_ref")
    wanted = {kind: sorted(set(ids)) for kind, ids in objects.items() if ids}
    if not wanted or set(wanted) - set(REDACTABLE):
        raise ValueError(f"give ids of {', '.join(REDACTABLE)}")
    job = _raw(
        "privacy.redaction_jobs.create",
        "/v1/privacy/redaction_jobs",
        objects=wanted,
        validation_behavior="fix",
        idempotency_key=f"slotpay:redaction:{job_ref}",
    )
    if job["status"] == "validating":
        # A retry replays the creation's first answer: ask how the job stands now.
        job = _raw(
            "privacy.redaction_jobs.retrieve",
            f"/v1/privacy/redaction_jobs/{job['id']}",
            method="get",
        )
    if job["status"] == "ready":
        job = _raw(
            "privacy.redaction_jobs.run",
            f"/v1/privacy/redaction_jobs/{job['id']}/run",
            idempotency_key=f"slotpay:redaction-run:{job_ref}",
        )
    return RedactionJob(id=job["id"], status=job["status"])


def _raw(operation: str, path: str, *, method: str = "post", **params: Any) -> dict[str, Any]:
    """A call to an endpoint stripe-python has no service for yet (previews)."""
    response = _call(operation, lambda c: c.raw_request(method, path, **params))
    data: dict[str, Any] = json.loads(response.body)
    return data


# --- Lists (reconciliation) ----------------------------------------------------------
#
# Stripe lists newest first; ``starting_after`` (the last id of a page) asks for the next
# page and ``has_more`` says whether there is one. ``created[gte]`` bounds the walk.


def _list_params(
    *, created_gte: datetime | None, limit: int, starting_after: str | None
) -> dict[str, Any]:
    if not 1 <= limit <= 100:
        raise ValueError("limit must be between 1 and 100 (Stripe's bounds)")
    params: dict[str, Any] = {"limit": limit}
    if created_gte is not None:
        params["created"] = {"gte": int(created_gte.timestamp())}
    if starting_after:
        params["starting_after"] = starting_after
    return params


def _walk(fetch: Callable[[str | None], tuple[list[T], bool, str | None]]) -> Iterator[T]:
    """Every item of a list, page after page (each page one logged call)."""
    starting_after = None
    while True:
        items, has_more, last_id = fetch(starting_after)
        yield from items
        if not has_more or last_id is None:
            return
        starting_after = last_id


def list_events(
    *,
    type: str | None = None,
    types: Sequence[str] = (),
    created_gte: datetime | None = None,
    limit: int = 100,
    starting_after: str | None = None,
) -> EventPage:
    """One page of events, newest first (Stripe keeps them 30 days): reconciliation.

    ``types``: only these (Stripe takes up to 20), e.g. the ones we have handlers for.
    """
    if len(types) > 20:
        raise ValueError("Stripe filters on at most 20 event types")
    params = _list_params(created_gte=created_gte, limit=limit, starting_after=starting_after)
    if type:
        params["type"] = type
    if types:
        params["types"] = list(types)
    page = _call("events.list", lambda c: c.v1.events.list(params))  # type: ignore[arg-type]
    return EventPage(
        events=[Event.from_stripe(item) for item in page.data], has_more=bool(page.has_more)
    )


def iter_events(
    *,
    type: str | None = None,
    types: Sequence[str] = (),
    created_gte: datetime | None = None,
    page_size: int = 100,
) -> Iterator[Event]:
    """Every matching event, page after page (each page is one logged call)."""

    def fetch(after: str | None) -> tuple[list[Event], bool, str | None]:
        page = list_events(
            type=type, types=types, created_gte=created_gte, limit=page_size, starting_after=after
        )
        return page.events, page.has_more, page.last_id

    return _walk(fetch)


def list_checkout_sessions(
    *,
    created_gte: datetime | None = None,
    status: str | None = None,
    limit: int = 100,
    starting_after: str | None = None,
) -> Page[CheckoutSession]:
    """One page of Checkout Sessions, newest first; ``status``: open, complete, expired."""
    params = _list_params(created_gte=created_gte, limit=limit, starting_after=starting_after)
    if status:
        params["status"] = status
    page = _call(
        "checkout.sessions.list",
        lambda c: c.v1.checkout.sessions.list(params),  # type: ignore[arg-type]
    )
    return Page(
        items=[CheckoutSession.from_stripe(item) for item in page.data],
        has_more=bool(page.has_more),
    )


def iter_checkout_sessions(
    *, created_gte: datetime | None = None, status: str | None = None, page_size: int = 100
) -> Iterator[CheckoutSession]:
    def fetch(after: str | None) -> tuple[list[CheckoutSession], bool, str | None]:
        page = list_checkout_sessions(
            created_gte=created_gte, status=status, limit=page_size, starting_after=after
        )
        return page.items, page.has_more, page.last_id

    return _walk(fetch)


def list_refunds(
    *,
    created_gte: datetime | None = None,
    charge: str | None = None,
    payment_intent: str | None = None,
    limit: int = 100,
    starting_after: str | None = None,
) -> Page[Refund]:
    """One page of refunds, newest first: ours and those made in the Stripe dashboard."""
    params = _list_params(created_gte=created_gte, limit=limit, starting_after=starting_after)
    if charge:
        params["charge"] = charge
    if payment_intent:
        params["payment_intent"] = payment_intent
    page = _call("refunds.list", lambda c: c.v1.refunds.list(params))  # type: ignore[arg-type]
    return Page(
        items=[Refund.from_stripe(item) for item in page.data], has_more=bool(page.has_more)
    )


def iter_refunds(*, created_gte: datetime | None = None, page_size: int = 100) -> Iterator[Refund]:
    def fetch(after: str | None) -> tuple[list[Refund], bool, str | None]:
        page = list_refunds(created_gte=created_gte, limit=page_size, starting_after=after)
        return page.items, page.has_more, page.last_id

    return _walk(fetch)


def retrieve_event(event_id: str) -> Event:
    _require(event_id, "event_id")
    return Event.from_stripe(_call("events.retrieve", lambda c: c.v1.events.retrieve(event_id)))


# --- Webhook signatures -------------------------------------------------------------


class WebhookSignatureInvalid(Exception):  # noqa: N818 (named for the outcome callers handle)
    """A Stripe-Signature header that none of our secrets verifies.

    ``reason`` is ``signature_mismatch`` (no v1 value matches any secret) or
    ``timestamp_stale`` (a secret matches but ``t`` is older than the tolerance).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_webhook_signature(
    payload: bytes, header: str, secrets: Sequence[str], *, tolerance: int
) -> None:
    """Verify a delivery's ``Stripe-Signature`` with stripe-python, trying every secret.

    ``stripe.WebhookSignature.verify_header`` is the check ``stripe.Webhook.
    construct_event`` makes before it parses; Stripe documents it for validating
    deliveries "before storing them for later processing", which is what the inbox
    does. construct_event would also build a StripeObject of the whole event, which
    the endpoint throws away: 2 ms of its budget per delivery, against 0.02 ms for
    the check (measured with a Checkout Session event).

    Several secrets verify at once while one is being rolled (Stripe then signs with
    both, one ``v1`` each). Raises :class:`WebhookSignatureInvalid`. Future
    timestamps are the caller's to refuse: Stripe's library checks only the past.
    """
    stale = False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            # Stripe compares the signature before the age, so this message means the
            # signature matched: the delivery is genuine but too old (or replayed).
            stale = stale or "tolerance" in str(exc)
            continue
        return
    raise WebhookSignatureInvalid("timestamp_stale" if stale else "signature_mismatch")


def live_mode() -> bool:
    """Whether our key is a live-mode key: events must then say ``livemode: true``."""
    return settings.STRIPE_API_KEY.startswith(("sk_live_", "rk_live_"))
