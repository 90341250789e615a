"""Stripe's JSON shapes, key for key (tests compare them with Stripe's own fixtures)."""

from __future__ import annotations

import secrets
import string
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """``cs_test_a1B2...``, ``pi_3Q...``: Stripe-like, unguessable ids."""
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def _address() -> dict[str, None]:
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


# The one merchant the sandbox plays: who Stripe's pages (Checkout, the receipt) name
# as the seller, and what the client's bank statement says.
BUSINESS_NAME = "Slotpay Sandbox Ltd"
STATEMENT_DESCRIPTOR = "SLOTPAY SANDBOX"


def account(*, account_id: str = "acct_1SlotpaySandbox00") -> dict[str, Any]:
    """Our own account, as ``GET /v1/account`` answers (the fields receipts read)."""
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "mcc": "8999",
            "name": BUSINESS_NAME,
            "product_description": "Sessions with builders, booked through Calendly",
            "support_address": None,
            "support_email": "support@slotpay.example",
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": "company",
        "charges_enabled": True,
        "country": "DE",
        "created": 1735689600,
        "default_currency": "eur",
        "details_submitted": True,
        "email": None,
        "payouts_enabled": True,
        "settings": {
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "dashboard": {"display_name": BUSINESS_NAME, "timezone": "Etc/UTC"},
            "payments": {
                "statement_descriptor": STATEMENT_DESCRIPTOR,
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
            },
        },
        "type": "standard",
    }


def checkout_session(
    *,
    session_id: str,
    url: str,
    created: int,
    expires_at: int,
    currency: str,
    amount_subtotal: int,
    amount_tax: int,
    automatic_tax: bool,
    success_url: str,
    cancel_url: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    metadata: dict[str, str],
    custom_text: dict[str, Any],
    customer_creation: str | None,
    payment_method_types: list[str],
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_subtotal,
        "amount_total": amount_subtotal + amount_tax,
        "automatic_tax": {
            "enabled": automatic_tax,
            "liability": {"type": "self"} if automatic_tax else None,
            "status": "complete" if automatic_tax else None,
            "provider": "stripe" if automatic_tax else None,
        },
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
            **custom_text,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": customer_creation,
        "customer_details": None,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": None,
        "managed_payments": {"enabled": False},
        "metadata": metadata,
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": payment_method_types,
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": amount_tax},
        "ui_mode": "hosted",
        "url": url,
        "wallet_options": None,
    }


def customer_details(email: str | None, name: str | None) -> dict[str, Any]:
    return {
        "address": _address(),
        "email": email,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
        "business_name": None,
        "individual_name": None,
    }


def customer(*, customer_id: str, created: int, email: str | None, name: str | None) -> dict:
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": email,
        "invoice_prefix": customer_id[4:12].upper(),
        "livemode": False,
        "metadata": {},
        "name": name,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
    }


def payment_intent(
    *,
    intent_id: str,
    created: int,
    amount: int,
    currency: str,
    status: str,
    customer_id: str,
    charge_id: str,
    payment_method_id: str,
    method_type: str,
    metadata: dict[str, str],
    receipt_email: str | None,
) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{new_id('x', 16)[2:]}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": customer_id,
        "description": None,
        "last_payment_error": None,
        "latest_charge": charge_id,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method_id,
        "payment_method_types": [method_type],
        "receipt_email": receipt_email,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def card_details(*, brand: str, last4: str, exp_month: int, exp_year: int, country: str) -> dict:
    return {
        "card": {
            "amount_authorized": None,
            "authorization_code": None,
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": country,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "extended_authorization": {"status": "disabled"},
            "fingerprint": new_id("fp", 16)[3:],
            "funding": "credit",
            "incremental_authorization": {"status": "unavailable"},
            "installments": None,
            "last4": last4,
            "mandate": None,
            "multicapture": {"status": "unavailable"},
            "network": brand,
            "network_token": {"used": False},
            "network_transaction_id": None,
            "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": None,
            "transaction_link_id": None,
            "wallet": None,
        },
        "type": "card",
    }


def sepa_details(*, iban: str) -> dict[str, Any]:
    return {
        "sepa_debit": {
            "bank_code": iban[4:9],
            "branch_code": None,
            "country": iban[:2],
            "fingerprint": new_id("fp", 16)[3:],
            "last4": iban[-4:],
            "mandate": new_id("mandate"),
        },
        "type": "sepa_debit",
    }


def charge(
    *,
    charge_id: str,
    created: int,
    amount: int,
    currency: str,
    status: str,
    customer_id: str,
    intent_id: str,
    payment_method_id: str,
    payment_method_details: dict[str, Any],
    outcome: dict[str, Any],
    receipt_url: str,
    receipt_email: str | None,
    name: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if status == "succeeded" else None,
        "billing_details": {
            "address": _address(),
            "email": receipt_email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": STATEMENT_DESCRIPTOR,
        "captured": True,
        "created": created,
        "currency": currency,
        "customer": customer_id,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": status == "succeeded",
        "payment_intent": intent_id,
        "payment_method": payment_method_id,
        "payment_method_details": payment_method_details,
        "receipt_email": receipt_email,
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def outcome(*, risk_level: str, risk_score: int, network_status: str = "approved_by_network"):
    return {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": network_status,
        "reason": None,
        "risk_level": risk_level,
        "risk_score": risk_score,
        "seller_message": "Payment complete.",
        "type": "authorized",
    }


def refund(
    *,
    refund_id: str,
    created: int,
    amount: int,
    currency: str,
    status: str,
    charge_id: str,
    intent_id: str,
    payment_method_id: str,
    reason: str | None,
    metadata: dict[str, str],
    method_type: str,
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn") if status == "succeeded" else None,
        "charge": charge_id,
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "destination_details": (
            {"card": {"type": "refund"}, "type": "card"}
            if method_type == "card"
            else {"type": method_type, method_type: {}}
        ),
        "metadata": metadata,
        "payment_intent": intent_id,
        "payment_method": payment_method_id,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def dispute(
    *,
    dispute_id: str,
    created: int,
    due_by: int,
    amount: int,
    currency: str,
    charge_id: str,
    intent_id: str,
    brand: str,
) -> dict[str, Any]:
    evidence_fields = [
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "duplicate_charge_documentation",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_documentation",
        "shipping_tracking_number",
        "uncategorized_file",
        "uncategorized_text",
    ]
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_id,
        "created": created,
        "currency": currency,
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(evidence_fields), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_id,
        "payment_method_details": {
            "card": {
                "brand": brand,
                "case_type": "chargeback",
                "network_reason_code": "10.4",
                "network": brand,
            },
            "type": "card",
        },
        "reason": "fraudulent",
        "status": "needs_response",
    }


def dispute_balance_transaction(
    *, dispute_id: str, charge_id: str, created: int, amount: int, fee: int, currency: str
) -> dict[str, Any]:
    """Money a dispute moves, as listed in its ``balance_transactions``: negative when
    withdrawn (the dispute fee on top), positive when reinstated after a won one."""
    withdrawal = amount < 0
    return {
        "id": new_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created,
        "created": created,
        "currency": currency,
        "description": (
            f"Chargeback withdrawal for {charge_id}"
            if withdrawal
            else f"Chargeback reversal for {charge_id}"
        ),
        "exchange_rate": None,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": "dispute" if withdrawal else "dispute_reversal",
        "source": dispute_id,
        "status": "pending",
        "type": "adjustment",
    }


def event(
    *,
    event_id: str,
    event_type: str,
    created: int,
    api_version: str,
    data_object: dict[str, Any],
    request_id: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }
