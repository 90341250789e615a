"""The sandbox's Stripe pages: hosted Checkout, receipts and the dashboard."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from payments import stripe_gateway
from sandbox import delivery
from sandbox.access import operator_only
from sandbox.stripe_sandbox import services, shapes
from sandbox.stripe_sandbox.forms import (
    CreateSessionForm,
    DisputeActionForm,
    RestrictedKeyForm,
)
from sandbox.stripe_sandbox.models import RestrictedKey, StripeObject
from sandbox.stripe_sandbox.money import to_minor


def _session(session_id: str) -> StripeObject:
    try:
        return services.session_retrieve(session_id)
    except services.ApiError:
        raise Http404("No such Checkout Session") from None


def _success_redirect(session: dict[str, Any]) -> HttpResponse:
    url = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    """Stripe's hosted payment page: test cards and SEPA test IBANs."""
    session = _session(session_id)
    error = None
    form_values: dict[str, str] = {}
    if request.method == "POST":
        form_values = {
            name: request.POST.get(name, "")[:100] for name in ("name", "email", "iban", "expiry")
        }
        try:
            if request.POST.get("method") == "sepa_debit":
                data = services.pay_with_sepa(
                    session_id,
                    iban=request.POST.get("iban", ""),
                    name=request.POST.get("name", ""),
                    email=request.POST.get("email", ""),
                )
            else:
                data = services.pay_with_card(
                    session_id,
                    number=request.POST.get("number", ""),
                    expiry=request.POST.get("expiry", ""),
                    cvc=request.POST.get("cvc", ""),
                    name=request.POST.get("name", ""),
                    email=request.POST.get("email", ""),
                )
        except services.PaymentDeclined as declined:
            error = declined
            session.refresh_from_db()
        else:
            return _success_redirect(data)
    data = session.data
    return render(
        request,
        "sandbox/stripe/checkout.html",
        {
            "session": data,
            "line_items": session.private.get("line_items", []),
            "error": error,
            "values": form_values,
            "test_cards": CARD_HINTS,
            "test_ibans": IBAN_HINTS,
            "tax_rate": services.TAX_RATE_PERCENT,
            "return_url": data["success_url"].replace("{CHECKOUT_SESSION_ID}", data["id"]),
        },
        status=402 if error else 200,
    )


CARD_HINTS = [
    ("4242 4242 4242 4242", "succeeds"),
    ("4000 0000 0000 0002", "declined (generic_decline)"),
    ("4000 0000 0000 9995", "declined (insufficient_funds)"),
    ("4000 0000 0000 0259", "succeeds, then the cardholder disputes it"),
    ("4000 0000 0000 9235", "succeeds with elevated risk"),
]
IBAN_HINTS = [
    ("AT61 1904 3002 3457 3201", "succeeds a few seconds later"),
    ("AT86 1904 3002 3547 3202", "fails a few seconds later"),
]


@require_safe
def receipt(request: HttpRequest, charge_id: str) -> HttpResponse:
    found = StripeObject.objects.filter(id=charge_id, object="charge").first()
    if found is None:
        raise Http404("No such receipt")
    session = StripeObject.objects.filter(id=found.private.get("session", "")).first()
    return render(
        request,
        "sandbox/stripe/receipt.html",
        {
            "account": shapes.account(),
            "charge": found.data,
            "line_items": session.private.get("line_items", []) if session else [],
            "session": session.data if session else None,
        },
    )


def _recent(kind: str, limit: int = 15) -> list[dict[str, Any]]:
    return [row.data for row in StripeObject.objects.filter(object=kind)[:limit]]


@operator_only
@require_http_methods(["GET", "HEAD", "POST"])
def dashboard(request: HttpRequest) -> HttpResponse:
    """Everything the sandbox holds, and a form that goes through the real gateway."""
    delivery.wake()  # resume what a restart left pending (deliveries, expiries)
    if request.method == "POST" and "dispute" in request.POST:
        return _dispute_action(request)
    form = CreateSessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        base = request.build_absolute_uri(reverse("sandbox:sandbox_stripe:dashboard"))
        try:
            created = stripe_gateway.create_checkout_session(
                # An opaque reference, as the booking's would be; one per form submission.
                booking_ref=f"sandbox-demo-{secrets.token_hex(6)}",
                item_name=form.cleaned_data["item_name"],
                amount=to_minor(form.cleaned_data["amount"], form.cleaned_data["currency"]),
                currency=form.cleaned_data["currency"],
                success_url=f"{base}?paid={{CHECKOUT_SESSION_ID}}",
                cancel_url=f"{base}?canceled=1",
                refund_terms=form.cleaned_data["refund_terms"],
                automatic_tax=form.cleaned_data["automatic_tax"],
                customer_email=form.cleaned_data["customer_email"] or None,
            )
        except stripe_gateway.PaymentProviderError as exc:
            messages.error(request, f"Stripe refused the session: {exc}")
        else:
            return redirect(created.url)
    if request.GET.get("paid"):
        messages.info(request, f"Back from Checkout: session {request.GET['paid'][:80]} paid.")
    elif request.GET.get("canceled"):
        messages.info(request, "Back from Checkout without paying.")
    return render(
        request,
        "sandbox/stripe/dashboard.html",
        {
            "form": form,
            "key_form": RestrictedKeyForm(),
            "sessions": _recent("checkout.session"),
            "charges": _recent("charge"),
            "refunds": _recent("refund"),
            "disputes": _recent("dispute"),
            "dispute_open": services.DISPUTE_OPEN,
            "dispute_awaiting": list(services.DISPUTE_AWAITING_EVIDENCE),
            "dispute_actions": DisputeActionForm.ACTIONS,
            "events": _recent("event", 25),
            "keys": RestrictedKey.objects.all()[:20],
        },
    )


def _dispute_action(request: HttpRequest) -> HttpResponse:
    """Submit evidence for an open dispute, or close it as won or lost: each sends the
    signed events Stripe sends (``charge.dispute.updated``, ``.closed``,
    ``.funds_reinstated``). Posted to the dashboard itself, whose URL the API's do not
    share."""
    form = DisputeActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a dispute and what to do with it.")
        return redirect("sandbox:sandbox_stripe:dashboard")
    dispute_id, action = form.cleaned_data["dispute"], form.cleaned_data["action"]
    try:
        if action == DisputeActionForm.EVIDENCE:
            data = services.dispute_submit_evidence(
                dispute_id, text=form.cleaned_data["evidence"] or "Service delivered as booked."
            )
        else:
            data = services.dispute_close(dispute_id, won=action == DisputeActionForm.WON)
    except services.ApiError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Dispute {dispute_id} is now {data['status']}.")
    return redirect("sandbox:sandbox_stripe:dashboard")


@operator_only
@require_POST
def restricted_key_create(request: HttpRequest) -> HttpResponse:
    form = RestrictedKeyForm(request.POST)
    if form.is_valid():
        key = RestrictedKey.objects.create(
            name=form.cleaned_data["name"],
            key=f"rk_test_{secrets.token_urlsafe(24)}",
            permissions=form.permissions(),
        )
        messages.info(request, f"Created restricted key {key.name}.")
    else:
        messages.error(request, "The key was not created: check the form.")
    return redirect("sandbox:sandbox_stripe:dashboard")


@operator_only
@require_POST
def restricted_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a restricted key, as Stripe's dashboard does: from now on the API refuses
    it (401), while a key made to replace it works on (docs/security-policy.md)."""
    key = RestrictedKey.objects.filter(pk=pk).first()
    if key is None:
        raise Http404("No such restricted key.")
    key.delete()
    messages.info(request, f"Revoked restricted key {key.name}: the API refuses it from now on.")
    return redirect("sandbox:sandbox_stripe:dashboard")
