"""The client's and the builder's pages: server-rendered, no inline script or style.

Every read goes through ``bookings/selectors.py``, which decides who sees what:
someone else's booking is the same 404 as one that does not exist.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_email
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import links
from bookings import calendly, checkout, claims, selectors, services
from bookings.models import Booking, EventType
from core.http import client_ip
from core.timezones import viewer_zone
from payments import stripe_gateway
from payments.models import Payment
from payments.money import format_money
from payments.services import NotReady

logger = logging.getLogger(__name__)


# --- What a page shows of a booking ------------------------------------------------------


def _row(booking: Booking, *, zone: ZoneInfo, as_client: bool) -> dict[str, Any]:
    """What a page shows of a booking: money formatted for the reader, the start to be
    shown in ``zone`` (templates format it with ``|timezone:row.zone`` and name the
    zone), and the card and receipt only for the booking's client: builders never see
    them (docs/data-inventory.md), so their rows do not carry them."""
    payment = next((p for p in booking.payments.all() if p.status != Payment.Status.EXPIRED), None)
    refunded = sum(
        r.amount for p in booking.payments.all() for r in p.refunds.all() if r.status == "succeeded"
    )
    processing = (
        booking.status == Booking.Status.PENDING_PAYMENT
        and payment is not None
        and payment.is_processing
    )
    # Taken at some point: what the client was charged (tax included) is what counts.
    charged = payment is not None and payment.status in Payment.PAID_ONCE
    card = (
        f"{payment.card_brand.title()} •••• {payment.card_last4}"
        if as_client and payment is not None and payment.card_last4
        else ""
    )
    return {
        "booking": booking,
        "start": booking.start_at,
        "zone": zone,
        "zone_name": zone.key,
        # A bank debit on its way: one status everywhere, never "not completed".
        "status": payment.display_status
        if payment is not None and processing
        else booking.get_status_display(),
        "processing": processing,
        "price": format_money(booking.price_amount, booking.currency),
        # Stripe adds its tax on top at Checkout: the price alone is not what is paid.
        "plus_tax": booking.event_type.automatic_tax,
        "charged": charged,
        "payment_status": payment.status if payment else "",
        "payment_label": payment.display_status if payment else "",
        "paid": format_money(payment.amount, payment.currency) if payment else "",
        "tax": format_money(payment.tax_amount, payment.currency)
        if charged and payment is not None and payment.tax_amount
        else "",
        "card": card,
        "receipt_url": payment.receipt_url if as_client and payment is not None else "",
        "refunded": format_money(refunded, booking.currency) if refunded else "",
        "can_cancel": booking.status in (Booking.Status.CONFIRMED, Booking.Status.PENDING_PAYMENT)
        and booking.end_at > timezone.now(),
    }


# --- Builders and event types -----------------------------------------------------------


@require_safe
def builders(request: HttpRequest) -> HttpResponse:
    listed = selectors.builder_list_on_offer(user=request.user)
    return render(request, "bookings/builders.html", {"builders": listed})


@require_safe
def builder(request: HttpRequest, slug: str) -> HttpResponse:
    shown = selectors.builder_get_on_offer(user=request.user, slug=slug)
    types = [
        {"event_type": t, "price": format_money(t.price_amount, t.currency)}
        for t in selectors.event_type_list_on_offer(user=request.user, builder=shown)
    ]
    return render(request, "bookings/builder.html", {"builder": shown, "event_types": types})


def _tiers(event_type: EventType) -> list[str]:
    lines = []
    for tier in event_type.policy.tiers:
        if tier.min_notice_hours:
            lines.append(
                f"Cancel {tier.min_notice_hours} hours or more before the start: "
                f"{tier.percent}% refunded"
            )
        else:
            lines.append(f"Cancel later than that: {tier.percent}% refunded")
    return lines


@require_http_methods(["GET", "HEAD", "POST"])
def event_type(request: HttpRequest, pk: int) -> HttpResponse:
    """Price and policy; with the consent box ticked, on to Calendly to pick a slot."""
    shown = selectors.event_type_get_on_offer(user=request.user, pk=pk)
    context: dict[str, Any] = {
        "event_type": shown,
        "price": format_money(shown.price_amount, shown.currency),
        "tiers": _tiers(shown),
        "may_book": services.can_book(request.user),
        "verify_first": services.must_verify_email(request.user),
    }
    if request.method != "POST":
        return render(request, "bookings/event_type.html", context)
    if not request.user.is_authenticated:
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': request.path})}")
    if not services.can_book(request.user):
        context["error"] = (
            "Please verify your email address first: follow the link we emailed you."
            if context["verify_first"]
            else "This account cannot book sessions."
        )
        return render(request, "bookings/event_type.html", context, status=403)
    if request.POST.get("consent") != "yes":
        context["error"] = "Please tick the box to agree to the refund policy before booking."
        return render(request, "bookings/event_type.html", context, status=400)
    version = request.POST.get("policy_version", "")
    if version != str(shown.refund_policy_version):
        context["error"] = (
            "The refund policy changed while you were reading it: please read it again."
        )
        return render(request, "bookings/event_type.html", context, status=409)
    consent = services.consent_give(user=request.user, event_type=shown, ip=client_ip(request))
    prefill = {
        "name": request.user.get_full_name(),
        "email": request.user.email,
        "utm_source": "slotpay",
        "utm_content": services.issue_intent(consent),
    }
    parts = urlsplit(shown.scheduling_url)
    query = "&".join(filter(None, [parts.query, urlencode(prefill)]))
    return HttpResponseRedirect(urlunsplit(parts._replace(query=query)))


# --- Back from Calendly, to Checkout, back from Checkout ---------------------------------


def _message(request: HttpRequest, title: str, text: str, status: int) -> HttpResponse:
    return render(request, "bookings/message.html", {"title": title, "text": text}, status=status)


# What Calendly's redirect carries that the booking is found by.
REDIRECT_FIELDS = ("invitee_uuid", "invitee_email", "event_start_time")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def scheduled(request: HttpRequest) -> HttpResponse:
    """Calendly's redirect after a slot is picked.

    The GET only shows a page that continues by POST (at once, with the page's
    script; otherwise with its button): a GET never writes or calls a provider, so a
    link preview, a prefetch or a reload changes nothing. The POST verifies the
    invitee with Calendly, records the booking and sends the client to Checkout.
    """
    params = request.POST if request.method == "POST" else request.GET
    invitee_uuid = params.get("invitee_uuid", "")
    email = params.get("invitee_email", "")
    try:
        start = datetime.fromisoformat(params.get("event_start_time", ""))
        if start.tzinfo is None or not 2000 <= start.year <= 2999:
            raise ValueError("not a time a session starts at")
        start = start.astimezone(UTC)
        calendly.uuid_from_uri(invitee_uuid, "invitees")
        validate_email(email)  # bounded (254) and well-formed before Calendly hears it
    except (ValueError, OverflowError, ValidationError):
        return _message(
            request,
            "This link is incomplete",
            "We could not read which booking you made. Your booking is safe: it appears under "
            "My bookings within a minute, with a link to pay.",
            400,
        )
    if request.method != "POST":
        fields = {name: params[name] for name in REDIRECT_FIELDS if name in params}
        return render(request, "bookings/scheduled.html", {"fields": fields})
    try:
        with calendly.CalendlyClient() as client:
            invitee = client.find_invitee(invitee_uuid, email=email, start_time=start)
            scheduled_event = (
                client.get_scheduled_event(invitee.event_uri) if invitee is not None else None
            )
    except calendly.CalendlyError:
        logger.warning("bookings.scheduled.calendly_unavailable")
        return _message(
            request,
            "We could not reach Calendly",
            "Your slot is booked. We will confirm it as soon as Calendly answers: it appears "
            "under My bookings with a link to pay, and we email you the link too.",
            503,
        )
    if invitee is None or scheduled_event is None:
        raise Http404("no such booking")
    try:
        booking = services.booking_record_invitee(
            invitee=invitee, event=scheduled_event, source="redirect"
        )
    except NotReady:
        booking = None
    if booking is not None and booking.client_id is None and booking.invitee_email == email:
        return _message(
            request,
            "Check your email to pay",
            "Your slot is booked, but it was not made from your account's booking page. "
            "We emailed the address you gave Calendly a link to claim and pay for it; "
            "unpaid, the slot is released after "
            f"{settings.BOOKING_PAYMENT_HOLD_MINUTES} minutes.",
            202,
        )
    if booking is None:
        raise Http404("no such booking")  # not ours, or not recordable yet
    # Someone else's is the same 404: nothing to show this account.
    own = selectors.booking_get_for_client(user=request.user, reference=booking.reference)
    return _to_checkout(request, own)


def _to_checkout(request: HttpRequest, booking: Booking) -> HttpResponse:
    if booking.status != Booking.Status.PENDING_PAYMENT:
        return redirect("bookings:detail", reference=booking.reference)
    try:
        payment = checkout.checkout_start(booking=booking)
    except checkout.CheckoutRefused as exc:
        messages.error(request, str(exc))
        return redirect("bookings:detail", reference=booking.reference)
    except stripe_gateway.PaymentProviderError:
        logger.warning("bookings.checkout.unavailable", extra={"booking": booking.pk})
        messages.error(
            request,
            "The payment page could not be opened just now. Your slot is held: try "
            "“Pay now” again in a minute.",
        )
        return redirect("bookings:detail", reference=booking.reference)
    return HttpResponseRedirect(payment.checkout_url, status=303)


@login_required
@require_POST
def pay(request: HttpRequest, reference: UUID) -> HttpResponse:
    return _to_checkout(
        request, selectors.booking_get_for_client(user=request.user, reference=reference)
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def paid(request: HttpRequest, reference: UUID) -> HttpResponse:
    """Back from Checkout.

    The GET shows what we know. While the payment is still open it also asks, once,
    by POST (the page's script, or its button), and the POST asks Stripe directly:
    the page never says "awaiting payment" about a payment Stripe has taken, and a GET
    never calls Stripe or writes. After that it refreshes until the webhook lands.
    """
    booking = selectors.booking_get_for_client(user=request.user, reference=reference)
    params = request.POST if request.method == "POST" else request.GET
    session_id = params.get("session_id", "")
    if booking.rescheduled_to_id is not None:
        # Moved (on Calendly) before or after paying: the payment went with it, and so
        # does this page. The successor is the same client's (it takes over the client).
        successor = booking
        while successor.rescheduled_to_id is not None:
            successor = Booking.objects.get(pk=successor.rescheduled_to_id)
        moved = selectors.booking_get_for_client(user=request.user, reference=successor.reference)
        query = urlencode({"session_id": session_id})
        return HttpResponseRedirect(
            f"{reverse('bookings:paid', args=[moved.reference])}?{query}", status=303
        )
    payment = booking.payments.filter(checkout_session_id=session_id).first()
    if request.method == "POST":
        if payment is not None and payment.status == Payment.Status.OPEN:
            try:
                session = stripe_gateway.retrieve_checkout_session(session_id, with_payment=True)
                checkout.checkout_settle(payment=payment, session=session)
            except stripe_gateway.PaymentProviderError:
                logger.warning("bookings.paid.stripe_unavailable", extra={"booking": booking.pk})
        query = urlencode({"session_id": session_id, "checked": "1"})
        return HttpResponseRedirect(
            f"{reverse('bookings:paid', args=[reference])}?{query}", status=303
        )
    waiting = booking.status == Booking.Status.PENDING_PAYMENT
    ask_stripe = (
        waiting
        and payment is not None
        and payment.status == Payment.Status.OPEN
        and not params.get("checked")
    )
    shown = selectors.booking_get_for_client(
        user=request.user, reference=reference, with_payments=True
    )
    return render(
        request,
        "bookings/paid.html",
        {
            "row": _client_row(request, shown),
            "waiting": waiting,
            "ask_stripe": ask_stripe,
            "session_id": session_id,
        },
    )


def _client_row(request: HttpRequest, booking: Booking) -> dict[str, Any]:
    return _row(booking, zone=viewer_zone(request.user, booking=booking), as_client=True)


# --- My bookings ---------------------------------------------------------------------------


CLIENT_PAGE_SIZE = 50


@login_required
@require_safe
def mine(request: HttpRequest) -> HttpResponse:
    """The client's own bookings, 50 a page, latest start first: only the page's rows
    (and their payments and refunds) are read, however many the client has made. A
    ``?page=`` that is not a page number shows the first page, one past the end the
    last (Paginator.get_page)."""
    theirs = selectors.booking_list_for_client(user=request.user)
    page = Paginator(theirs, CLIENT_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_client_row(request, b) for b in page.object_list]
    return render(request, "bookings/mine.html", {"rows": rows, "page": page})


@login_required
@require_safe
def detail(request: HttpRequest, reference: UUID) -> HttpResponse:
    booking = selectors.booking_get_for_client(
        user=request.user, reference=reference, with_payments=True
    )
    row = _client_row(request, booking)
    context: dict[str, Any] = {"row": row}
    if row["can_cancel"]:
        amount, payment = services.policy_refund(booking, timezone.now())
        context["refund"] = format_money(amount, payment.currency if payment else booking.currency)
        context["paid"] = payment is not None
        context["refund_due"] = amount > 0
    context["deadlines"] = _deadline_lines(booking, row["zone"])
    context["calendly"] = _calendly_pages(booking)
    return render(request, "bookings/detail.html", context)


def _calendly_pages(booking: Booking) -> dict[str, str]:
    """Calendly's own reschedule and cancel pages for this invitee, as Calendly gave
    them when the booking was recorded (no provider call on a GET), while the session
    is still ahead and movable. A reschedule there cancels this invitee as rescheduled
    and books a new one, which takes over the payment (services._take_over)."""
    movable = booking.status in (Booking.Status.CONFIRMED, Booking.Status.PENDING_PAYMENT)
    if not movable or booking.start_at <= timezone.now():
        return {}
    return {
        name: url
        for name, url in (
            ("reschedule", booking.calendly_reschedule_url),
            ("cancel", booking.calendly_cancel_url),
        )
        if url
    }


def _deadline_lines(booking: Booking, zone: ZoneInfo) -> list[str]:
    """The agreed policy as dates in the reader's zone, named. Notice counts hours
    back from the start, so across a DST change a deadline's clock time moves."""
    policy = services.agreed_policy(booking)
    cap = services.reschedule_cap(booking, policy=policy)
    lines: list[str] = []
    for tier, deadline in zip(
        policy.tiers, policy.deadlines(booking.start_at, zone.key), strict=True
    ):
        percent = tier.percent if cap is None else min(tier.percent, cap)
        if not tier.min_notice_hours:
            first = "Cancel after that, before the start" if lines else "Cancel before the start"
            lines.append(f"{first}: {percent}% back")
        elif deadline.until > booking.created_at:
            # A deadline already gone when the session was booked never applied.
            lines.append(
                f"Cancel by {deadline.until:%-d %B %Y, %H:%M} ({zone.key}): {percent}% back"
            )
    if cap is not None:
        lines.append(
            f"Moved from an earlier booking: at most {cap}% back, what cancelling it gave "
            "when it was moved."
        )
    return lines


@login_required
@require_POST
def cancel(request: HttpRequest, reference: UUID) -> HttpResponse:
    booking = selectors.booking_get_for_client(user=request.user, reference=reference)
    try:
        # A User, not AnonymousUser: login_required (the stubs cannot know).
        amount = services.booking_cancel_by_client(
            booking=booking,
            actor=request.user,  # type: ignore[arg-type]
        )
    except services.CancelRefused as exc:
        messages.error(request, str(exc))
    except (calendly.CalendlyError, stripe_gateway.PaymentProviderError):
        logger.warning("bookings.cancel.provider_unavailable", extra={"booking": booking.pk})
        messages.error(
            request,
            "We could not cancel just now (a provider did not answer). Nothing has changed: "
            "please try again in a minute.",
        )
    else:
        booking.refresh_from_db()
        if amount:
            messages.success(
                request,
                f"Canceled. {format_money(amount, booking.currency)} is being refunded "
                "to your card.",
            )
        else:
            messages.success(request, "Canceled. No refund is due under the policy.")
    return redirect("bookings:detail", reference=reference)


# --- Builders' own pages ---------------------------------------------------------------------


BUILDER_PAGE_SIZE = 50


def _builder_row(request: HttpRequest, booking: Booking) -> dict[str, Any]:
    """A row of the builder's list: who booked (decrypted for this page's rows only),
    in the builder's zone, and what the builder may do with it now."""
    row = _row(booking, zone=viewer_zone(request.user, builder=booking.builder), as_client=False)
    started = booking.start_at <= timezone.now()
    row["who"] = booking.invitee_name or ""
    row["email"] = booking.invitee_email or ""
    row["can_no_show"] = started and booking.status in (
        Booking.Status.CONFIRMED,
        Booking.Status.COMPLETED,
    )
    row["can_cancel_as_builder"] = not started and booking.status in (
        Booking.Status.CONFIRMED,
        Booking.Status.PENDING_PAYMENT,
    )
    row["cancel_label"] = (
        "Cancel (full refund)"
        if booking.status == Booking.Status.CONFIRMED
        else "Cancel (nothing was charged)"
    )
    return row


@login_required
@require_safe
def builder_bookings(request: HttpRequest) -> HttpResponse:
    """The bookings of the builders the member belongs to, 50 a page, newest start
    first: only the page's rows are read and decrypted, whatever the total."""
    theirs = selectors.builder_bookings_for(user=request.user)
    page = Paginator(theirs.bookings, BUILDER_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_builder_row(request, b) for b in page.object_list]
    return render(
        request,
        "bookings/builder_bookings.html",
        {"rows": rows, "builders": theirs.builders, "page": page},
    )


def _member(request: HttpRequest) -> Any:
    """The person asking, as the services take them: a User behind login_required
    (the stubs type ``request.user`` as User or AnonymousUser)."""
    return request.user


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def builder_no_show(request: HttpRequest, reference: UUID) -> HttpResponse:
    """Mark a no-show: the GET asks to confirm, the POST does it."""
    booking = selectors.booking_get_for_builder(user=request.user, reference=reference)
    row = _builder_row(request, booking)
    if request.method != "POST":
        if not row["can_no_show"]:
            messages.error(request, "A no-show can be marked once a confirmed session has started.")
            return redirect("bookings:builder_bookings")
        return render(request, "bookings/builder_confirm.html", {"row": row, "action": "no_show"})
    try:
        services.booking_mark_no_show_by_builder(booking=booking, actor=_member(request))
    except services.NoShowRefused as exc:
        messages.error(request, str(exc))
    except PermissionDenied:
        raise Http404("no such booking") from None
    else:
        messages.success(request, "Marked as a no-show. The client has been told; no refund.")
    return redirect("bookings:builder_bookings")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def builder_cancel(request: HttpRequest, reference: UUID) -> HttpResponse:
    """Cancel as the provider, refunding everything: the GET asks to confirm, naming
    the amount; the POST does it."""
    booking = selectors.booking_get_for_builder(user=request.user, reference=reference)
    row = _builder_row(request, booking)
    if request.method != "POST":
        if not row["can_cancel_as_builder"]:
            messages.error(
                request, "Only a confirmed or unpaid booking that has not started can be canceled."
            )
            return redirect("bookings:builder_bookings")
        amount, payment = services.policy_refund(booking, timezone.now(), full=True)
        return render(
            request,
            "bookings/builder_confirm.html",
            {
                "row": row,
                "action": "cancel",
                "refund": format_money(amount, payment.currency) if payment else "",
            },
        )
    try:
        amount = services.booking_cancel_by_builder(booking=booking, actor=_member(request))
    except services.CancelRefused as exc:
        messages.error(request, str(exc))
    except PermissionDenied:
        raise Http404("no such booking") from None
    except (calendly.CalendlyError, stripe_gateway.PaymentProviderError):
        logger.warning(
            "bookings.builder_cancel.provider_unavailable", extra={"booking": booking.pk}
        )
        messages.error(
            request,
            "We could not cancel just now (a provider did not answer). Nothing has changed: "
            "please try again in a minute.",
        )
    else:
        refunded = f" {format_money(amount, booking.currency)} is refunded." if amount else ""
        messages.success(request, f"Canceled; the client has been told.{refunded}")
    return redirect("bookings:builder_bookings")


# --- Claiming a booking made straight on Calendly -------------------------------------------

CLAIM_SESSION_KEY = "bookings.claim"


def _signup_url() -> str:
    """Sign-up, coming back here."""
    return f"{reverse('accounts:signup')}?{urlencode({'next': reverse('bookings:claim')})}"


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def claim(request: HttpRequest) -> HttpResponse:
    """The emailed link to claim a booking made straight on Calendly.

    Opened with its secret (``?t=``), the page keeps it in the session and drops it
    from the address bar (history, Referer); it then shows the booking, the policy and
    how long is left, and asks a visitor to sign in or sign up with the address the
    link went to. Signed in with that address: agree and pay (POST). Signed in with
    another: refused, audited."""
    if request.method != "POST" and claims.PARAM in request.GET:
        # Bounded: anything longer is no secret of ours (and must not fill the session).
        secret = request.GET[claims.PARAM][: links.MAX_SECRET_LENGTH + 1]
        request.session[CLAIM_SESSION_KEY] = secret
        return redirect("bookings:claim")
    secret = request.session.get(CLAIM_SESSION_KEY, "")
    found = claims.claim_find(secret)
    if found is None:
        return _message(request, "This link cannot be used", claims.EXPIRED, 410)
    context = _claim_context(request, found)
    user = _member(request)
    try:
        if user.is_authenticated and not claims.claim_is_for(found, user):
            claims.claim_refuse_account(found, user)
        if request.method != "POST" or not user.is_authenticated:
            return render(request, "bookings/claim.html", context)
        claimed = _claim(request, secret, user)
    except claims.WrongAccount as exc:
        context.update(error=str(exc), may_claim=False)
        return render(request, "bookings/claim.html", context, status=403)
    except claims.ClaimRefused as exc:
        context["error"] = str(exc)
        return render(request, "bookings/claim.html", context, status=_claim_status(exc))
    request.session.pop(CLAIM_SESSION_KEY, None)
    return _to_checkout(
        request, selectors.booking_get_for_client(user=user, reference=claimed.reference)
    )


class _NoConsent(claims.ClaimRefused):
    pass


def _claim_status(exc: claims.ClaimRefused) -> int:
    return 400 if isinstance(exc, _NoConsent) else 409


def _claim(request: HttpRequest, secret: str, user: Any) -> Booking:
    if request.POST.get("consent") != "yes":
        raise _NoConsent("Please tick the box to agree to the refund policy before paying.")
    return claims.booking_claim(
        secret=secret,
        user=user,
        policy_version=request.POST.get("policy_version", ""),
        ip=client_ip(request),
    )


def _claim_context(request: HttpRequest, found: claims.Claim) -> dict[str, Any]:
    """The booking, the policy and the time left, in the reader's zone (named)."""
    booking = found.booking
    zone = viewer_zone(request.user, booking=booking)
    back = urlencode({"next": reverse("bookings:claim")})
    return {
        "booking": booking,
        "start": booking.start_at,
        "ends_at": found.ends_at,
        "minutes_left": max(1, math.ceil((found.ends_at - timezone.now()).total_seconds() / 60)),
        "zone": zone,
        "zone_name": zone.key,
        "price": format_money(booking.price_amount, booking.currency),
        "tiers": _tiers(booking.event_type),
        "login_url": f"{reverse('accounts:login')}?{back}",
        "signup_url": _signup_url(),
        "may_claim": request.user.is_authenticated,
    }
