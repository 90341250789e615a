"""What the Stripe sandbox does: sessions, test payments, refunds, disputes, events.

The API views and the hosted pages both call these; each write runs in one
transaction with the events it emits, so a webhook never leaves for a change that
was rolled back (sandbox.delivery sends only after commit).
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from sandbox import db, delivery, scrub
from sandbox.models import Delivery
from sandbox.stripe_sandbox import shapes
from sandbox.stripe_sandbox.models import IdempotencyRecord, Slowdown, StripeObject

# The version the sandbox answers when a request names none (stripe-python pins one).
DEFAULT_API_VERSION = "2026-10-28.endive"

TAX_RATE_PERCENT = 19
MIN_EXPIRY = timedelta(minutes=30)
MAX_EXPIRY = timedelta(hours=24)
SETTLEMENT_DELAY = timedelta(seconds=3)
DISPUTE_DELAY = timedelta(seconds=5)
# Stripe takes the disputed amount, and its dispute fee, from the balance just after
# the dispute opens (a separate event, which may reach the endpoint first or later).
FUNDS_WITHDRAWAL_DELAY = timedelta(seconds=2)
DISPUTE_FEE = 1500  # minor units
REFUND_UPDATE_DELAY = timedelta(seconds=2)
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class ApiError(Exception):
    """A Stripe error answer: ``{"error": {"type", "code", "message", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param
        if decline_code:
            self.body["decline_code"] = decline_code


def missing(kind: str, object_id: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


@dataclass(frozen=True)
class RequestContext:
    """The API request a change came from (events name it in ``request``)."""

    request_id: str | None = None
    idempotency_key: str | None = None
    api_version: str = DEFAULT_API_VERSION
    base_url: str = ""


def now_ts() -> int:
    return int(time.time())


def get(object_id: str, kind: str, *, for_update: bool = False) -> StripeObject:
    queryset = StripeObject.objects.filter(id=object_id, object=kind)
    if for_update:
        queryset = queryset.select_for_update()
    found = queryset.first()
    if found is None:
        raise missing(kind, object_id)
    return found


def _save(obj: StripeObject, *fields: str) -> None:
    obj.save(update_fields=["data", "private", "due_at", *fields])


# --- Events ------------------------------------------------------------------------


def emit(
    event_type: str,
    data_object: dict[str, Any],
    *,
    api_version: str,
    ctx: RequestContext | None = None,
    delay: timedelta = timedelta(0),
) -> StripeObject:
    """Store an event (listable at /v1/events) and queue its signed delivery."""
    event_id = shapes.new_id("evt")
    body = shapes.event(
        event_id=event_id,
        event_type=event_type,
        created=now_ts() + int(delay.total_seconds()),
        api_version=api_version or DEFAULT_API_VERSION,
        data_object=copy.deepcopy(data_object),
        request_id=ctx.request_id if ctx else None,
        idempotency_key=ctx.idempotency_key if ctx else None,
    )
    stored = StripeObject.objects.create(
        id=event_id, object="event", data=body, api_version=body["api_version"]
    )
    delivery.enqueue(
        provider="stripe",
        event_type=event_type,
        url=settings.SANDBOX_STRIPE_WEBHOOK_URL,
        payload=body,
        secret=settings.STRIPE_WEBHOOK_SECRETS[0],
        event_id=event_id,
        delay=delay,
    )
    return stored


# --- Checkout Sessions -------------------------------------------------------------

_CURRENCY = re.compile(r"^[a-z]{3}$")
SESSION_PARAMS = frozenset(
    {
        "automatic_tax",
        "cancel_url",
        "client_reference_id",
        "custom_text",
        "customer_creation",
        "customer_email",
        "expand",
        "expires_at",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_types",
        "submit_type",
        "success_url",
    }
)


def _int(value: Any, param: str, *, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        ) from None
    if number < minimum:
        raise ApiError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


def _bool(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false", None):
        return False
    raise ApiError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def _dict(value: Any, param: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            400, f"Invalid object: {param}", code="parameter_invalid_object", param=param
        )
    return value


def _list(value: Any, param: str) -> list[Any]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"Invalid array: {param}", code="parameter_invalid_array", param=param)
    return value


def metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    data = _dict(value, param)
    if len(data) > 50:
        raise ApiError(400, "Metadata can have up to 50 keys.", param=param)
    for key, item in data.items():
        if len(key) > 40 or not isinstance(item, str) or len(item) > 500:
            raise ApiError(
                400,
                "Metadata keys are up to 40 characters and values up to 500.",
                param=f"{param}[{key}]",
            )
    return dict(data)


def _unknown(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(
                400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )


def _line_items(params: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    items = _list(params.get("line_items"), "line_items")
    if not items:
        raise ApiError(
            400, "Missing required param: line_items.", code="parameter_missing", param="line_items"
        )
    lines, currencies = [], set()
    for index, raw in enumerate(items):
        prefix = f"line_items[{index}]"
        item = _dict(raw, prefix)
        if "price" in item:
            raise ApiError(
                404,
                f"No such price: '{item['price']}'",
                code="resource_missing",
                param=f"{prefix}[price]",
            )
        price = _dict(item.get("price_data"), f"{prefix}[price_data]")
        product = _dict(price.get("product_data"), f"{prefix}[price_data][product_data]")
        currency = str(price.get("currency", "")).lower()
        if not _CURRENCY.match(currency):
            raise ApiError(
                400,
                "Invalid currency.",
                code="parameter_invalid_string",
                param=f"{prefix}[price_data][currency]",
            )
        name = str(product.get("name", "")).strip()
        if not name:
            raise ApiError(
                400,
                "Missing required param: product_data[name].",
                code="parameter_missing",
                param=f"{prefix}[price_data][product_data][name]",
            )
        unit_amount = _int(price.get("unit_amount"), f"{prefix}[price_data][unit_amount]")
        quantity = _int(item.get("quantity"), f"{prefix}[quantity]", minimum=1)
        currencies.add(currency)
        lines.append(
            {
                "id": shapes.new_id("li"),
                "object": "item",
                "amount_subtotal": unit_amount * quantity,
                "amount_total": unit_amount * quantity,
                "currency": currency,
                "description": name,
                "quantity": quantity,
                "unit_amount": unit_amount,
                "tax_behavior": price.get("tax_behavior", "unspecified"),
            }
        )
    if len(currencies) != 1:
        raise ApiError(400, "All line items must use the same currency.", param="line_items")
    return lines, currencies.pop()


def tax_on(amount: int) -> int:
    """The sandbox's stand-in for Stripe Tax: 19 % on top, rounded half up."""
    return (amount * TAX_RATE_PERCENT + 50) // 100


def session_create(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, SESSION_PARAMS)
    mode = params.get("mode", "payment")
    if mode != "payment":
        raise ApiError(400, "The sandbox supports mode=payment only.", param="mode")
    success_url = params.get("success_url")
    if not success_url:
        raise ApiError(
            400,
            "Missing required param: success_url.",
            code="parameter_missing",
            param="success_url",
        )
    lines, currency = _line_items(params)
    subtotal = sum(line["amount_subtotal"] for line in lines)
    automatic_tax = _bool(
        _dict(params.get("automatic_tax"), "automatic_tax").get("enabled"), "automatic_tax[enabled]"
    )
    amount_tax = tax_on(subtotal) if automatic_tax else 0
    created = now_ts()
    expires_at = created + int(MAX_EXPIRY.total_seconds())
    if params.get("expires_at") not in (None, ""):
        expires_at = _int(params["expires_at"], "expires_at")
        if not (
            created + MIN_EXPIRY.total_seconds()
            <= expires_at
            <= created + MAX_EXPIRY.total_seconds()
        ):
            raise ApiError(
                400,
                "The `expires_at` timestamp must be between 30 minutes and "
                "24 hours from Checkout Session creation.",
                param="expires_at",
            )
    custom_text = {}
    for part, value in _dict(params.get("custom_text"), "custom_text").items():
        message = _dict(value, f"custom_text[{part}]").get("message", "")
        if len(message) > 1200:
            raise ApiError(
                400,
                "Custom text is limited to 1200 characters.",
                param=f"custom_text[{part}][message]",
            )
        custom_text[part] = {"message": message} if message else None
    method_types = [
        str(t) for t in _list(params.get("payment_method_types"), "payment_method_types")
    ]
    if not method_types:
        method_types = ["card", "sepa_debit"] if currency == "eur" else ["card"]
    for method in method_types:
        if method not in ("card", "sepa_debit"):
            raise ApiError(
                400, f"The payment method type {method!r} is invalid.", param="payment_method_types"
            )
    if "sepa_debit" in method_types and currency != "eur":
        raise ApiError(
            400,
            "The payment method `sepa_debit` requires currency eur.",
            param="payment_method_types",
        )
    intent_data = _dict(params.get("payment_intent_data"), "payment_intent_data")

    session_id = shapes.new_id("cs_test", 58)
    data = shapes.checkout_session(
        session_id=session_id,
        url=ctx.base_url + reverse("sandbox:sandbox_stripe:checkout", args=[session_id]),
        created=created,
        expires_at=expires_at,
        currency=currency,
        amount_subtotal=subtotal,
        amount_tax=amount_tax,
        automatic_tax=automatic_tax,
        success_url=success_url,
        cancel_url=params.get("cancel_url") or None,
        customer_email=params.get("customer_email") or None,
        client_reference_id=params.get("client_reference_id") or None,
        metadata=metadata(params.get("metadata")),
        custom_text=custom_text,
        customer_creation=params.get("customer_creation") or "if_required",
        payment_method_types=method_types,
    )
    StripeObject.objects.create(
        id=session_id,
        object="checkout.session",
        data=data,
        private={
            "line_items": lines,
            "intent_metadata": metadata(
                intent_data.get("metadata"), "payment_intent_data[metadata]"
            ),
            "due": "expire",
            "base_url": ctx.base_url,
        },
        api_version=ctx.api_version,
        due_at=datetime.fromtimestamp(expires_at, tz=UTC),
    )
    return data


def expire_if_due(session: StripeObject) -> bool:
    """Expire an open session whose ``expires_at`` has passed (lazily, as on access)."""
    if session.data["status"] != "open" or session.data["expires_at"] > now_ts():
        return False
    _expire(session, ctx=None)
    return True


def _expire(session: StripeObject, *, ctx: RequestContext | None) -> None:
    session.data["status"] = "expired"
    session.private.pop("due", None)
    session.due_at = None
    _save(session)
    api_version = ctx.api_version if ctx else session.api_version
    emit("checkout.session.expired", session.data, api_version=api_version, ctx=ctx)


def session_retrieve(session_id: str) -> StripeObject:
    with db.atomic():
        session = get(session_id, "checkout.session", for_update=True)
        expire_if_due(session)
    return session


def session_expire(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    session = get(session_id, "checkout.session", for_update=True)
    expire_if_due(session)
    if session.data["status"] != "open":
        raise ApiError(
            400,
            'Only Checkout Sessions with a status in ["open"] can be '
            f"expired. This Checkout Session has status {session.data['status']!r}.",
            code="checkout_session_not_open",
        )
    session.data["expires_at"] = now_ts()
    _expire(session, ctx=ctx)
    return session.data


def line_items_list(session: StripeObject) -> dict[str, Any]:
    return {
        "object": "list",
        "data": session.private.get("line_items", []),
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session.id}/line_items",
    }


# --- Paying on the hosted page ------------------------------------------------------


@dataclass(frozen=True)
class TestCard:
    brand: str
    decline_code: str | None = None
    risk_level: str = "normal"
    risk_score: int = 20
    disputed: bool = False


# Stripe's documented test cards (https://docs.stripe.com/testing).
TEST_CARDS = {
    "4242424242424242": TestCard("visa"),
    "5555555555554444": TestCard("mastercard"),
    "4000000000000002": TestCard("visa", decline_code="generic_decline"),
    "4000000000009995": TestCard("visa", decline_code="insufficient_funds"),
    "4000000000000069": TestCard("visa", decline_code="expired_card"),
    "4000000000000127": TestCard("visa", decline_code="incorrect_cvc"),
    "4000000000000259": TestCard("visa", disputed=True),
    "4000000000009235": TestCard("visa", risk_level="elevated", risk_score=65),
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
}
DECLINE_CODES = {"expired_card": "expired_card", "incorrect_cvc": "incorrect_cvc"}
# SEPA Direct Debit test IBANs: the outcome arrives a few seconds later.
TEST_IBANS = {
    "AT611904300234573201": "succeeded",
    "AT861904300235473202": "failed",
    "DE89370400440532013000": "succeeded",
    "DE62370400440532013001": "failed",
}


class PaymentDeclined(Exception):  # noqa: N818 (a payment outcome, not a fault)
    def __init__(self, message: str, code: str, decline_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.decline_code = decline_code


def _luhn_ok(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def check_card(number: str, expiry: str, cvc: str) -> tuple[TestCard, str, int, int]:
    """Validate the form; returns the test card, its digits and the expiry month/year."""
    digits = re.sub(r"[\s-]", "", number)
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not _luhn_ok(digits):
        raise PaymentDeclined("Your card number is invalid.", "invalid_number")
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry)
    if not match or not 1 <= int(match[1]) <= 12:
        raise PaymentDeclined("Your card's expiration date is incomplete.", "invalid_expiry_month")
    month, year = int(match[1]), int(match[2])
    year = year + 2000 if year < 100 else year
    today = timezone.now().date()
    if (year, month) < (today.year, today.month):
        raise PaymentDeclined("Your card's expiration year is in the past.", "invalid_expiry_year")
    if not re.fullmatch(r"\d{3,4}", cvc.strip()):
        raise PaymentDeclined("Your card's security code is incomplete.", "incomplete_cvc")
    card = TEST_CARDS.get(digits)
    if card is None:
        raise PaymentDeclined(
            "Your card was declined. Your request was in test mode, but used a non test "
            "(live) card. For a list of valid test cards, visit: "
            "https://docs.stripe.com/testing.",
            "card_declined",
            "test_mode_live_card",
        )
    if card.decline_code:
        raise PaymentDeclined(
            DECLINE_MESSAGES[card.decline_code],
            DECLINE_CODES.get(card.decline_code, "card_declined"),
            card.decline_code,
        )
    return card, digits, month, year


def _open_session_for_payment(session_id: str) -> StripeObject:
    session = get(session_id, "checkout.session", for_update=True)
    expire_if_due(session)
    if session.data["status"] != "open":
        raise PaymentDeclined(
            f"This Checkout Session is {session.data['status']} and cannot be paid.",
            "checkout_session_not_open",
        )
    return session


def _create_payment(
    session: StripeObject,
    *,
    email: str | None,
    name: str | None,
    method_type: str,
    details: dict[str, Any],
    status: str,
    risk_level: str = "normal",
    risk_score: int = 20,
) -> tuple[StripeObject, StripeObject]:
    """Customer, PaymentIntent and Charge for a session; the session is completed."""
    data = session.data
    created = now_ts()
    customer_id = shapes.new_id("cus", 14)
    intent_id, charge_id = shapes.new_id("pi"), shapes.new_id("ch")
    method_id = shapes.new_id("pm")
    base = session.private.get("base_url", "")
    StripeObject.objects.create(
        id=customer_id,
        object="customer",
        data=shapes.customer(customer_id=customer_id, created=created, email=email, name=name),
        api_version=session.api_version,
    )
    intent_metadata = session.private.get("intent_metadata", {})
    intent = StripeObject.objects.create(
        id=intent_id,
        object="payment_intent",
        data=shapes.payment_intent(
            intent_id=intent_id,
            created=created,
            amount=data["amount_total"],
            currency=data["currency"],
            status="succeeded" if status == "succeeded" else "processing",
            customer_id=customer_id,
            charge_id=charge_id,
            payment_method_id=method_id,
            method_type=method_type,
            metadata=intent_metadata,
            receipt_email=email,
        ),
        api_version=session.api_version,
    )
    charge = StripeObject.objects.create(
        id=charge_id,
        object="charge",
        data=shapes.charge(
            charge_id=charge_id,
            created=created,
            amount=data["amount_total"],
            currency=data["currency"],
            status=status,
            customer_id=customer_id,
            intent_id=intent_id,
            payment_method_id=method_id,
            payment_method_details=details,
            outcome=shapes.outcome(risk_level=risk_level, risk_score=risk_score),
            receipt_url=base + reverse("sandbox:sandbox_stripe:receipt", args=[charge_id]),
            receipt_email=email,
            name=name,
            metadata=intent_metadata,
        ),
        private={"session": session.id},
        api_version=session.api_version,
    )
    data.update(
        status="complete",
        payment_status="paid" if status == "succeeded" else "unpaid",
        payment_intent=intent_id,
        customer=customer_id,
        customer_details=shapes.customer_details(email, name),
    )
    session.private.pop("due", None)
    session.due_at = None
    return intent, charge


@db.atomic()
def pay_with_card(
    session_id: str, *, number: str, expiry: str, cvc: str, name: str, email: str
) -> dict[str, Any]:
    """Pay an open session with a test card; raises PaymentDeclined (session stays open)."""
    session = _open_session_for_payment(session_id)
    if "card" not in session.data["payment_method_types"]:
        raise PaymentDeclined("Cards are not accepted for this payment.", "payment_method_invalid")
    card, digits, month, year = check_card(number, expiry, cvc)
    email = session.data["customer_email"] or email.strip() or None
    _, charge = _create_payment(
        session,
        email=email,
        name=name.strip() or None,
        method_type="card",
        details=shapes.card_details(
            brand=card.brand, last4=digits[-4:], exp_month=month, exp_year=year, country="US"
        ),
        status="succeeded",
        risk_level=card.risk_level,
        risk_score=card.risk_score,
    )
    _save(session)
    emit("checkout.session.completed", session.data, api_version=session.api_version)
    if card.disputed:
        # The cardholder disputes shortly after paying (Stripe's 0259 card).
        charge.private["due"] = "dispute"
        charge.due_at = timezone.now() + DISPUTE_DELAY
        _save(charge)
    return session.data


@db.atomic()
def pay_with_sepa(session_id: str, *, iban: str, name: str, email: str) -> dict[str, Any]:
    """A delayed method: completed now (unpaid), succeeds or fails a few seconds later."""
    session = _open_session_for_payment(session_id)
    if "sepa_debit" not in session.data["payment_method_types"]:
        raise PaymentDeclined(
            "SEPA Direct Debit is not accepted for this payment.", "payment_method_invalid"
        )
    iban = re.sub(r"\s", "", iban).upper()
    outcome = TEST_IBANS.get(iban)
    if outcome is None:
        raise PaymentDeclined(
            "Use one of the SEPA test IBANs listed on this page.", "invalid_bank_account_iban"
        )
    if not name.strip() or not (session.data["customer_email"] or email.strip()):
        raise PaymentDeclined(
            "A SEPA mandate needs the account holder's name and email.", "incomplete_mandate"
        )
    _create_payment(
        session,
        email=session.data["customer_email"] or email.strip(),
        name=name.strip(),
        method_type="sepa_debit",
        details=shapes.sepa_details(iban=iban),
        status="pending",
    )
    session.private.update(due="settle", settlement=outcome)
    session.due_at = timezone.now() + SETTLEMENT_DELAY
    _save(session)
    emit("checkout.session.completed", session.data, api_version=session.api_version)
    return session.data


def _settle(session: StripeObject) -> None:
    outcome = session.private.pop("settlement", "succeeded")
    intent = get(session.data["payment_intent"], "payment_intent", for_update=True)
    charge = get(intent.data["latest_charge"], "charge", for_update=True)
    if outcome == "succeeded":
        session.data["payment_status"] = "paid"
        intent.data.update(status="succeeded", amount_received=intent.data["amount"])
        charge.data.update(
            status="succeeded",
            paid=True,
            amount_captured=charge.data["amount"],
            balance_transaction=shapes.new_id("txn"),
            outcome=shapes.outcome(risk_level="not_assessed", risk_score=0),
        )
        event_type = "checkout.session.async_payment_succeeded"
    else:
        intent.data.update(
            status="requires_payment_method",
            last_payment_error={
                "code": "insufficient_funds",
                "type": "card_error",
                "message": "The account has insufficient funds.",
            },
        )
        charge.data.update(
            status="failed",
            failure_code="insufficient_funds",
            failure_message="The account has insufficient funds.",
        )
        event_type = "checkout.session.async_payment_failed"
    _save(intent)
    _save(charge)
    _save(session)
    emit(event_type, session.data, api_version=session.api_version)


def _open_dispute(charge: StripeObject) -> None:
    dispute_id = shapes.new_id("du")
    created = now_ts()
    data = shapes.dispute(
        dispute_id=dispute_id,
        created=created,
        due_by=created + 7 * 24 * 3600,
        amount=charge.data["amount"] - charge.data["amount_refunded"],
        currency=charge.data["currency"],
        charge_id=charge.id,
        intent_id=charge.data["payment_intent"],
        brand=charge.data["payment_method_details"]["card"]["brand"],
    )
    StripeObject.objects.create(
        id=dispute_id,
        object="dispute",
        data=data,
        private={"due": "withdraw"},
        api_version=charge.api_version,
        due_at=timezone.now() + FUNDS_WITHDRAWAL_DELAY,
    )
    charge.data["disputed"] = True
    charge.private["dispute"] = dispute_id
    _save(charge)
    emit("charge.dispute.created", data, api_version=charge.api_version)


def _move_funds(dispute: StripeObject, amount: int, *, fee: int) -> None:
    dispute.data["balance_transactions"].append(
        shapes.dispute_balance_transaction(
            dispute_id=dispute.id,
            charge_id=dispute.data["charge"],
            created=now_ts(),
            amount=amount,
            fee=fee,
            currency=dispute.data["currency"],
        )
    )


def _withdraw_funds(dispute: StripeObject) -> None:
    """The disputed amount and the dispute fee leave the balance (once)."""
    dispute.private.pop("due", None)
    dispute.due_at = None
    if any(item["amount"] < 0 for item in dispute.data["balance_transactions"]):
        _save(dispute)
        return
    _move_funds(dispute, -dispute.data["amount"], fee=DISPUTE_FEE)
    _save(dispute)
    emit("charge.dispute.funds_withdrawn", dispute.data, api_version=dispute.api_version)


DISPUTE_OPEN = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")
DISPUTE_AWAITING_EVIDENCE = {
    "warning_needs_response": "warning_under_review",
    "needs_response": "under_review",
}


def _open_dispute_for_update(dispute_id: str) -> StripeObject:
    dispute = get(dispute_id, "dispute", for_update=True)
    if dispute.data["status"] not in DISPUTE_OPEN:
        raise ApiError(
            400,
            f"Dispute {dispute_id} is {dispute.data['status']}: it can no longer be changed.",
            code="dispute_already_closed",
        )
    return dispute


@db.atomic()
def dispute_submit_evidence(dispute_id: str, *, text: str) -> dict[str, Any]:
    """The merchant answers with evidence (the dashboard's "Submit evidence"): the
    dispute goes under review and ``charge.dispute.updated`` is sent."""
    dispute = _open_dispute_for_update(dispute_id)
    after = DISPUTE_AWAITING_EVIDENCE.get(dispute.data["status"])
    if after is None:
        raise ApiError(
            400,
            f"Dispute {dispute_id} is {dispute.data['status']}: evidence was submitted already.",
        )
    dispute.data["evidence"]["uncategorized_text"] = text.strip()[:20000] or None
    details = dispute.data["evidence_details"]
    details.update(has_evidence=True, submission_count=details["submission_count"] + 1)
    details["past_due"] = now_ts() > (details["due_by"] or 0)
    dispute.data["status"] = after
    _save(dispute)
    emit("charge.dispute.updated", dispute.data, api_version=dispute.api_version)
    return dispute.data


@db.atomic()
def dispute_close(dispute_id: str, *, won: bool) -> dict[str, Any]:
    """The card network decides: ``charge.dispute.closed``; a won chargeback also gives
    the amount back (``charge.dispute.funds_reinstated``; the fee stays with Stripe).
    An inquiry closes as ``warning_closed`` (no money had moved)."""
    dispute = _open_dispute_for_update(dispute_id)
    inquiry = dispute.data["status"].startswith("warning_")
    if not inquiry and dispute.private.get("due") == "withdraw":
        _withdraw_funds(dispute)  # Stripe always withdraws before the decision
    dispute.private.pop("due", None)
    dispute.due_at = None
    dispute.data["status"] = "warning_closed" if inquiry else ("won" if won else "lost")
    dispute.data["is_charge_refundable"] = False
    _save(dispute)
    emit("charge.dispute.closed", dispute.data, api_version=dispute.api_version)
    if won and not inquiry:
        _move_funds(dispute, dispute.data["amount"], fee=0)
        _save(dispute)
        emit("charge.dispute.funds_reinstated", dispute.data, api_version=dispute.api_version)
    return dispute.data


def run_due(*, limit: int = 50) -> int:
    """Do what has come due (expiry, settlement, disputes); registered as a delivery tick."""
    due = list(
        StripeObject.objects.filter(due_at__lte=timezone.now())
        .order_by("due_at")
        .values_list("seq", "due_at")[:limit]
    )
    done = 0
    for seq, due_at in due:
        with db.atomic():
            # Claim it: of several dispatchers, only one update matches.
            if not StripeObject.objects.filter(seq=seq, due_at=due_at).update(due_at=None):
                continue
            obj = StripeObject.objects.select_for_update().get(seq=seq)
            action = obj.private.pop("due", None)
            if action == "expire" and obj.data["status"] == "open":
                _expire(obj, ctx=None)
            elif action == "settle":
                _settle(obj)
            elif action == "dispute":
                _open_dispute(obj)
            elif action == "withdraw":
                obj.private["due"] = action  # _withdraw_funds clears it
                _withdraw_funds(obj)
            else:
                _save(obj)
            done += 1
    return done


# --- Refunds and customers ----------------------------------------------------------

REFUND_PARAMS = frozenset(
    {"amount", "charge", "payment_intent", "reason", "metadata", "expand", "instructions_email"}
)


def refund_create(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, REFUND_PARAMS)
    charge_id, intent_id = params.get("charge"), params.get("payment_intent")
    if not charge_id and not intent_id:
        raise ApiError(
            400,
            "One of `charge` or `payment_intent` is required.",
            code="parameter_missing",
            param="charge",
        )
    if intent_id:
        intent = get(intent_id, "payment_intent")
        if not intent.data.get("latest_charge") or intent.data["status"] not in (
            "succeeded",
            "processing",
        ):
            raise ApiError(
                400,
                f"PaymentIntent {intent_id} does not have a successful charge to refund.",
                code="charge_not_refundable",
                param="payment_intent",
            )
        if charge_id and charge_id != intent.data["latest_charge"]:
            raise ApiError(400, "The charge does not belong to this PaymentIntent.", param="charge")
        charge_id = intent.data["latest_charge"]
    charge = get(charge_id, "charge", for_update=True)
    data = charge.data
    dispute = StripeObject.objects.filter(
        id=charge.private.get("dispute", ""), object="dispute"
    ).first()
    # Refused while a dispute is open or once it is lost; a won one leaves it refundable.
    settled = dispute is not None and dispute.data["status"] in ("won", "warning_closed")
    if data["disputed"] and not settled:
        raise ApiError(
            400,
            f"Charge {charge.id} has been charged back; cannot issue a refund.",
            code="charge_disputed",
            param="charge",
        )
    if data["status"] != "succeeded":
        raise ApiError(
            400,
            f"Charge {charge.id} has not succeeded; it cannot be refunded.",
            code="charge_not_refundable",
            param="charge",
        )
    remaining = data["amount"] - data["amount_refunded"]
    if remaining <= 0:
        raise ApiError(
            400,
            f"Charge {charge.id} has already been refunded.",
            code="charge_already_refunded",
            param="charge",
        )
    amount = remaining
    if params.get("amount") not in (None, ""):
        amount = _int(params["amount"], "amount", minimum=1)
    if amount > remaining:
        raise ApiError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
            code="amount_too_large",
            param="amount",
        )
    reason = params.get("reason") or None
    if reason is not None and reason not in REFUND_REASONS:
        raise ApiError(
            400,
            f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}",
            code="parameter_invalid_string",
            param="reason",
        )
    refund_id = shapes.new_id("re")
    method_type = data["payment_method_details"]["type"]
    refund = shapes.refund(
        refund_id=refund_id,
        created=now_ts(),
        amount=amount,
        currency=data["currency"],
        status="succeeded",
        charge_id=charge.id,
        intent_id=data["payment_intent"],
        payment_method_id=data["payment_method"],
        reason=reason,
        metadata=metadata(params.get("metadata")),
        method_type=method_type,
    )
    StripeObject.objects.create(
        id=refund_id, object="refund", data=refund, api_version=ctx.api_version
    )
    data["amount_refunded"] += amount
    data["refunded"] = data["amount_refunded"] == data["amount"]
    data["refunds"]["data"].insert(0, refund)
    _save(charge)
    emit("charge.refunded", data, api_version=ctx.api_version, ctx=ctx)
    # Stripe updates a refund soon after (e.g. the card network's reference).
    updated = copy.deepcopy(refund)
    if method_type == "card":
        updated["destination_details"]["card"].update(
            reference_status="available", reference_type="acquirer_reference_number"
        )
    emit(
        "charge.refund.updated",
        updated,
        api_version=ctx.api_version,
        ctx=ctx,
        delay=REFUND_UPDATE_DELAY,
    )
    return refund


def customer_delete(customer_id: str, *, ctx: RequestContext | None = None) -> dict[str, Any]:
    customer = get(customer_id, "customer", for_update=True)
    if customer.data.get("deleted"):
        raise missing("customer", customer_id)
    # Stripe keeps only a tombstone: the personal data is gone. When it went is kept
    # beside it (the dashboard shows it) and announced as customer.deleted, whose
    # object here is the tombstone (Stripe's carries the customer as it was).
    customer.data = {"id": customer.id, "object": "customer", "deleted": True}
    customer.private["deleted_at"] = now_ts()
    _save(customer)
    emit(
        "customer.deleted",
        customer.data,
        api_version=customer.api_version or DEFAULT_API_VERSION,
        ctx=ctx,
    )
    return customer.data


# --- Redaction jobs (Stripe's privacy API, public preview) ---------------------------

REDACTED = "[redacted]"
REDACTION_ROOTS = {
    "customers": "customer",
    "checkout_sessions": "checkout.session",
    "payment_intents": "payment_intent",
    "charges": "charge",
}
# Fields that hold a person's data, wherever they appear in an object.
PERSONAL_FIELDS = frozenset(
    {"email", "name", "phone", "address", "customer_email", "receipt_email", "shipping"}
)


def redaction_job_create(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the objects named (they must exist) and keep the job, ready to run."""
    objects = params.get("objects") or {}
    if not isinstance(objects, dict) or not any(objects.get(kind) for kind in REDACTION_ROOTS):
        raise ApiError(400, "Name at least one object to redact.", param="objects")
    unknown = set(objects) - set(REDACTION_ROOTS)
    if unknown:
        raise ApiError(400, f"Cannot redact {sorted(unknown)[0]}.", param="objects")
    wanted = {kind: list(objects.get(kind) or []) for kind in REDACTION_ROOTS}
    for kind, ids in wanted.items():
        for object_id in ids:
            get(object_id, REDACTION_ROOTS[kind])
    job_id = shapes.new_id("prj")
    data = {
        "id": job_id,
        "object": "privacy.redaction_job",
        "created": now_ts(),
        "livemode": False,
        "objects": wanted,
        "status": "ready",
        "validation_behavior": params.get("validation_behavior") or "error",
    }
    StripeObject.objects.create(
        id=job_id, object="privacy.redaction_job", data=data, api_version=ctx.api_version
    )
    return data


def redaction_job_run(job_id: str) -> dict[str, Any]:
    """Redact the job's objects, those that point at them, and every copy of their
    personal values the sandbox keeps (events, idempotent answers, webhook
    deliveries: Stripe's events and request logs). Runs to the end at once."""
    job = get(job_id, "privacy.redaction_job", for_update=True)
    if job.data["status"] != "ready":
        raise ApiError(400, f"This job is {job.data['status']}: only a ready job runs.")
    roots = {object_id for ids in job.data["objects"].values() for object_id in ids}
    related = [
        obj
        for obj in StripeObject.objects.exclude(object__in=("event", "privacy.redaction_job"))
        if obj.id in roots or _points_at(obj.data, roots)
    ]
    values: set[str] = set()
    for obj in related:
        values |= _personal_values(obj.data)
    for obj in related:
        obj.data = _redact_fields(obj.data)
        _save(obj)
    _redact_copies(values)
    job.data["status"] = "succeeded"
    _save(job)
    return job.data


def _points_at(data: Any, ids: set[str]) -> bool:
    if isinstance(data, dict):
        return any(
            (key in ("customer", "payment_intent", "charge") and value in ids)
            or _points_at(value, ids)
            for key, value in data.items()
            if key != "id"
        )
    if isinstance(data, list):
        return any(_points_at(item, ids) for item in data)
    return False


def _personal_values(data: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in PERSONAL_FIELDS and isinstance(value, str) and len(value) >= 3:
                found.add(value)
            else:
                found |= _personal_values(value)
    elif isinstance(data, list):
        for item in data:
            found |= _personal_values(item)
    return found


def _redact_fields(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: (REDACTED if key in PERSONAL_FIELDS and value else _redact_fields(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_redact_fields(item) for item in data]
    return data


def _redact_copies(values: set[str]) -> None:
    if not values:
        return
    for obj in StripeObject.objects.filter(object="event"):
        redacted = scrub.without(obj.data, values, REDACTED)
        if redacted != obj.data:
            obj.data = redacted
            _save(obj)
    for record in IdempotencyRecord.objects.all():
        redacted = scrub.without(record.body, values, REDACTED)
        if redacted != record.body:
            record.body = redacted
            record.save(update_fields=["body"])
    scrub.deliveries_scrub(provider=Delivery.Provider.STRIPE, values=values, mask=REDACTED)


# --- Events -------------------------------------------------------------------------


def events_list(params: dict[str, Any]) -> dict[str, Any]:
    limit = _int(params.get("limit", 10), "limit", minimum=1)
    if limit > 100:
        raise ApiError(
            400,
            "This value must be less than or equal to 100.",
            code="parameter_invalid_integer",
            param="limit",
        )
    queryset = StripeObject.objects.filter(object="event")
    if params.get("type"):
        pattern = str(params["type"])
        if pattern.endswith("*"):
            queryset = queryset.filter(data__type__startswith=pattern[:-1])
        else:
            queryset = queryset.filter(data__type=pattern)
    types = _list(params.get("types"), "types")
    if types:
        queryset = queryset.filter(data__type__in=[str(t) for t in types])
    created = params.get("created")
    if isinstance(created, dict):
        for op in ("gt", "gte", "lt", "lte"):
            if created.get(op) not in (None, ""):
                queryset = queryset.filter(
                    **{f"data__created__{op}": _int(created[op], f"created[{op}]")}
                )
    elif created not in (None, ""):
        queryset = queryset.filter(data__created=_int(created, "created"))
    if params.get("starting_after"):
        anchor = get(str(params["starting_after"]), "event")
        queryset = queryset.filter(seq__lt=anchor.seq)
    if params.get("ending_before"):
        anchor = get(str(params["ending_before"]), "event")
        page = list(queryset.filter(seq__gt=anchor.seq).order_by("seq")[: limit + 1])
        has_more = len(page) > limit
        rows = list(reversed(page[:limit]))
    else:
        rows = list(queryset.order_by("-seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {
        "object": "list",
        "data": [row.data for row in rows],
        "has_more": has_more,
        "url": "/v1/events",
    }


def slowdown_arm(*, seconds: float, count: int = 1) -> Slowdown:
    """Answer the next ``count`` API requests ``seconds`` late (a slow provider)."""
    Slowdown.objects.filter(remaining__gt=0).update(remaining=0)
    return Slowdown.objects.create(seconds=seconds, remaining=count)


def slowdown_take() -> float:
    """Use up one armed slowdown, if any (safe under concurrency): its seconds, or 0."""
    while True:
        armed = Slowdown.objects.filter(remaining__gt=0).order_by("id").first()
        if armed is None:
            return 0.0
        if Slowdown.objects.filter(pk=armed.pk, remaining=armed.remaining).update(
            remaining=armed.remaining - 1
        ):
            return armed.seconds
