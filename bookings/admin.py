"""Event types (what builders sell) in the back-office; bookings read-only, with the
things staff do to one: refund it (a Finance member, stepped up; above the approval
threshold or beyond the agreed policy a second member approves), cancel it for the
client when the provider is at fault (a full refund), and send a booking made straight
on Calendly that nobody claimed to an existing client (``bookings.send_claim``).

Each page needs its permission before anything else (403), then a fresh step-up, then
goes through ``bookings.services`` (``bookings.claims``), which audits it with the
person acting.
The invitee's name, email and answers are masked (``accounts.reveal``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import User
from accounts.reveal import PersonalDataAdminMixin
from bookings.calendly import CalendlyError
from bookings.claims import ClaimRefused, claim_send_to_client
from bookings.models import Booking, Drift, EventType
from bookings.services import (
    CANCEL_FOR_CLIENT,
    CancelRefused,
    RefundStanding,
    booking_cancel_for_client,
    booking_refund_by_staff,
    hold_ends_at,
    refund_standing,
)
from core.admin import ReadOnlyAdmin
from core.encryption import blind_indexes
from core.stepup import stepped_up_or_redirect
from core.timezones import zoned
from payments.admin import HttpsUrlFields, refund_outcome_message, staff_name
from payments.models import Payment, Refund, RefundApproval
from payments.money import format_money, parse_amount
from payments.services import (
    ISSUE_REFUND,
    REASON_MAX,
    NotEnoughLeft,
    RefundRefused,
    dispute_refusal,
)
from payments.stripe_gateway import PaymentProviderError


@admin.register(EventType)
class EventTypeAdmin(HttpsUrlFields, admin.ModelAdmin):
    list_display = (
        "title",
        "builder",
        "price",
        "duration_minutes",
        "refund_policy_version",
        "active",
    )
    list_filter = ("active", "builder", "currency")
    readonly_fields = ("refund_policy_version", "created_at")

    fields = (
        "builder",
        "title",
        "calendly_event_type_uri",
        "scheduling_url",
        "duration_minutes",
        "price_amount",
        "currency",
        "automatic_tax",
        "refund_policy",
        "refund_policy_version",
        "active",
        "created_at",
    )

    @admin.display(description="price")
    def price(self, obj: EventType) -> str:
        return format_money(obj.price_amount, obj.currency)

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        """A policy change raises the version and is audited (set_refund_policy)."""
        tiers = obj.refund_policy
        if change and "refund_policy" in form.changed_data:
            obj.refund_policy = EventType.objects.get(pk=obj.pk).refund_policy
            super().save_model(request, obj, form, change)
            # Staff, never AnonymousUser: the admin signs people in (the stubs cannot know).
            obj.set_refund_policy(tiers, actor=request.user)  # type: ignore[arg-type]
            return
        super().save_model(request, obj, form, change)


class RefundForm(forms.Form):
    amount = forms.CharField(
        max_length=40,
        help_text="In the currency's units: 12.50, or 1500 for a currency without decimals.",
    )
    reason = forms.CharField(
        max_length=REASON_MAX, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )
    # One per form shown: submitting it twice (or from two tabs) refunds once.
    nonce = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["amount"].label = f"Amount ({currency.upper()})"

    def clean_amount(self) -> int:
        try:
            return parse_amount(self.cleaned_data["amount"], self.currency)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None


EXPIRED_FORM = "This form expired or was already submitted: reload and try again."
CONTENDED = (
    "Another refund of this payment was being decided at the same moment: nothing was "
    "refunded by this form; reload the page, check what remains, and try again."
)

CANCEL_CONTENDED = (
    "This booking's payments were being changed by someone else at the same moment: "
    "reload the booking to see where it stands; submitting again finishes what is left."
)


def _contended(exc: OperationalError) -> bool:
    """PostgreSQL gave up waiting for a lock (a deadlock, or the lock timeout)."""
    return getattr(exc.__cause__, "sqlstate", None) in {"40P01", "55P03"}


class CancelForClientForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What went wrong on the provider's side (kept in the audit trail).",
    )


class StartsFilter(admin.SimpleListFilter):
    """When the appointment starts, in the viewer's time zone (the back-office's active
    one). Each choice is a range the ``start_at`` index answers: Django's
    ``date_hierarchy`` scanned the whole table for its distinct months on every view of
    the list (58 ms of its 229 ms at 100,000 bookings, bench/pages.py)."""

    title = "starts"
    parameter_name = "starts"
    CHOICES = (
        ("today", "Starts today"),
        ("next_7_days", "Starts in the next 7 days"),
        ("upcoming", "Not started yet"),
        ("past_7_days", "Started in the past 7 days"),
        ("past", "Started before now"),
    )
    # Listed soonest first: the next appointment is what one looks for in these.
    AHEAD = frozenset({"today", "next_7_days", "upcoming"})

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return self.CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        week = timedelta(days=7)
        ranges = {
            "today": (midnight, midnight + timedelta(days=1)),
            "next_7_days": (now, now + week),
            "upcoming": (now, None),
            "past_7_days": (now - week, now),
            "past": (None, now),
        }
        if self.value() is None:
            return queryset
        if self.value() not in ranges:
            # The admin answers an unknown filter value as it does its own: "?e=1".
            raise IncorrectLookupParameters(f"unknown {self.parameter_name} value")
        start, end = ranges[str(self.value())]
        if start is not None:
            queryset = queryset.filter(start_at__gte=start)
        if end is not None:
            queryset = queryset.filter(start_at__lt=end)
        return queryset


@admin.register(Booking)
class BookingAdmin(PersonalDataAdminMixin, ReadOnlyAdmin):
    list_display = ("reference", "builder", "event_type", "start_at", "status", "needs_review")
    # An event type names its builder (EventType.__str__).
    list_select_related = ("builder", "event_type__builder")
    # Without it Django counts the whole table on every page, beside the page's own
    # count, for the "(N total)" shown next to a filter's result: a second scan.
    show_full_result_count = False
    list_filter = (StartsFilter, "status", "needs_review", "builder")
    search_fields = ("=reference", "=calendly_invitee_uuid")

    def get_ordering(self, request: HttpRequest) -> Any:
        if request.GET.get(StartsFilter.parameter_name) in StartsFilter.AHEAD:
            return ("start_at", "id")
        return super().get_ordering(request)

    # Masked, in clear only for those allowed (audited), revealed with a reason.
    personal_fields = {"invitee_name": "name", "invitee_email": "email", "answers": "text"}
    # Money as people read it; the client and staff without links to pages (accounts)
    # the viewer may not open.
    fields = (
        "reference",
        "builder",
        "event_type_shown",
        "client_shown",
        "status",
        "status_changed_at",
        "disputed_from",
        "start_at",
        "end_at",
        "invitee_time_zone",
        "invitee_name",
        "invitee_email",
        "answers",
        "price",
        "rescheduled_to",
        "needs_review",
        "review_reason",
        "cancel_requested_by_shown",
        "cancel_requested_at",
        "cancel_refund_full",
        "calendly_invitee_uuid",
        "calendly_invitee_uri",
        "calendly_event_uri",
        "created_at",
    )
    readonly_fields = ("event_type_shown", "client_shown", "price", "cancel_requested_by_shown")

    @admin.display(description="event type")
    def event_type_shown(self, obj: Booking) -> str:
        """Unlinked: Finance may not open event types."""
        return str(obj.event_type)

    @admin.display(description="client")
    def client_shown(self, obj: Booking) -> str:
        """Our client's account by its number, unlinked: their page is Privacy's."""
        return str(obj.client) if obj.client_id else "— (not linked)"

    @admin.display(description="price")
    def price(self, obj: Booking) -> str:
        return format_money(obj.price_amount, obj.currency) if obj.currency else "—"

    @admin.display(description="cancel requested by")
    def cancel_requested_by_shown(self, obj: Booking) -> str:
        who = obj.cancel_requested_by
        if who is None:
            return "—"
        return staff_name(who) if who.is_staff else str(who)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="bookings_booking_refund",
            ),
            path(
                "<int:object_id>/cancel-for-client/",
                self.admin_site.admin_view(self.cancel_for_client_view),
                name="bookings_booking_cancel_for_client",
            ),
            path(
                "<int:object_id>/send-claim/",
                self.admin_site.admin_view(self.send_claim_view),
                name="bookings_booking_send_claim",
            ),
        ]
        return own + super().get_urls()

    # --- Refund ---

    def refund_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(ISSUE_REFUND):
            raise PermissionDenied
        booking = get_object_or_404(Booking.objects.select_related("event_type"), pk=object_id)
        payment = _payment_of(booking, request.GET.get("payment") or request.POST.get("payment"))
        page = reverse("admin:bookings_booking_refund", args=[booking.pk])
        if payment is not None:
            page += f"?payment={payment.pk}"
        refused = stepped_up_or_redirect(request, next_url=page)
        if refused is not None:
            return refused
        form = None
        standing = None
        if payment is not None:
            standing = refund_standing(booking=booking, payment=payment, at=timezone.now())
            if request.method == "POST":
                form = RefundForm(request.POST, currency=payment.currency)
                if form.is_valid() and self._refund(request, form, booking, payment, standing):
                    return HttpResponseRedirect(page)
                if "nonce" in form.errors:  # a hidden field: its own error is never shown
                    form.add_error(None, EXPIRED_FORM)
            else:
                form = RefundForm(initial={"nonce": uuid4()}, currency=payment.currency)
        elif request.method == "POST":
            messages.error(request, "This booking has no payment to refund.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Refund booking {booking.pk}",
            "booking": booking,
            "payment": payment,
            "standing": standing,
            "shown": _shown(standing),
            "refunds": list(payment.refunds.order_by("-created_at")) if payment else [],
            "form": form,
        }
        return TemplateResponse(request, "admin/bookings/booking/refund.html", context)

    def _refund(
        self,
        request: HttpRequest,
        form: RefundForm,
        booking: Booking,
        payment: Payment,
        standing: RefundStanding,
    ) -> bool:
        """Make (or propose) the refund; False with the form's error when refused."""
        amount = form.cleaned_data["amount"]
        # A dispute leaves nothing to refund, and says why: the service refuses (and
        # audits the attempt) with that reason, not "Only €0.00 remains."
        if amount > standing.remaining and dispute_refusal(payment) is None:
            form.add_error(
                "amount", f"Only {format_money(standing.remaining, payment.currency)} remains."
            )
            return False
        try:
            outcome = booking_refund_by_staff(
                booking=booking,
                payment=payment,
                amount=amount,
                reason=form.cleaned_data["reason"],
                actor=request.user,  # type: ignore[arg-type]  # staff: the admin signed them in
                nonce=form.cleaned_data["nonce"],
            )
        except NotEnoughLeft as exc:
            form.add_error("amount", exc.shown)
            return False
        except RefundRefused as exc:
            form.add_error(None, str(exc))
            return False
        except OperationalError as exc:
            if not _contended(exc):
                raise
            form.add_error(None, CONTENDED)
            return False
        level, text = refund_outcome_message(outcome)
        messages.add_message(request, level, text)
        return True

    # --- Cancel for the client ---

    def cancel_for_client_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(CANCEL_FOR_CLIENT):
            raise PermissionDenied
        booking = get_object_or_404(Booking, pk=object_id)
        page = reverse("admin:bookings_booking_cancel_for_client", args=[booking.pk])
        refused = stepped_up_or_redirect(request, next_url=page)
        if refused is not None:
            return refused
        form = CancelForClientForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = booking_cancel_for_client(
                    booking=booking,
                    actor=request.user,  # type: ignore[arg-type]  # staff, signed in
                    reason=form.cleaned_data["reason"],
                )
            except CancelRefused as exc:
                form.add_error(None, str(exc))
            except (CalendlyError, PaymentProviderError):
                form.add_error(
                    None, "Calendly or Stripe could not be reached: nothing changed, try again."
                )
            except OperationalError as exc:
                if not _contended(exc):
                    raise
                form.add_error(None, CANCEL_CONTENDED)
            else:
                level, text = cancel_outcome_message(booking, outcome)
                messages.add_message(request, level, text)
                return HttpResponseRedirect(
                    reverse("admin:bookings_booking_change", args=[booking.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Cancel booking {booking.pk} for the client",
            "booking": booking,
            "form": form,
            "paid": format_money(
                sum(p.amount for p in booking.payments.filter(status__in=Payment.REFUNDABLE)),
                booking.currency,
            ),
        }
        return TemplateResponse(request, "admin/bookings/booking/cancel_for_client.html", context)

    # --- Send a booking nobody claimed to a client ---

    def send_claim_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A booking made straight on Calendly, handed by staff to an existing client:
        the client is emailed a claim link bound to their account (bookings.claims)."""
        if not request.user.has_perm(SEND_CLAIM):
            raise PermissionDenied
        booking = get_object_or_404(Booking.objects.select_related("event_type"), pk=object_id)
        page = reverse("admin:bookings_booking_send_claim", args=[booking.pk])
        refused = stepped_up_or_redirect(request, next_url=page)
        if refused is not None:
            return refused
        form = SendClaimForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            client = (
                User.objects.filter(email_index__in=blind_indexes(form.cleaned_data["email"]))
                .exclude(is_staff=True)
                .first()
            )
            if client is None:
                form.add_error("email", "No client account has this email address.")
            else:
                try:
                    until = claim_send_to_client(
                        booking=booking,
                        client=client,
                        actor=request.user,  # type: ignore[arg-type]  # staff, signed in
                    )
                except ClaimRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(
                        request,
                        f"A link to claim booking {booking.pk} was emailed to client "
                        f"{client.pk}; it works until {zoned(until)}.",
                    )
                    return HttpResponseRedirect(
                        reverse("admin:bookings_booking_change", args=[booking.pk])
                    )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Send booking {booking.pk} to a client",
            "booking": booking,
            "form": form,
            "hold_ends": zoned(hold_ends_at(booking)),
        }
        return TemplateResponse(request, "bookings/admin_send_claim.html", context)


SEND_CLAIM = "bookings.send_claim"


class SendClaimForm(forms.Form):
    email = forms.EmailField(
        label="The client's email address",
        help_text="An existing client account; it gets a link to agree to the policy and pay.",
    )


def cancel_outcome_message(
    booking: Booking, outcome: Refund | RefundApproval | None
) -> tuple[int, str]:
    """What the clerk who cancelled for the client is told: whether the full refund
    was made or waits for another Finance member (with a link to the approval)."""
    done = f"Booking {booking.pk} is canceled for the client"
    if outcome is None:
        return messages.SUCCESS, f"{done}; nothing remains to refund on its payments."
    amount = format_money(outcome.amount, outcome.payment.currency)
    if isinstance(outcome, RefundApproval):
        if outcome.status == RefundApproval.Status.PENDING:
            link = reverse("admin:payments_refundapproval_change", args=[outcome.pk])
            return messages.WARNING, format_html(
                "{}; the full refund of {} waits for another Finance member's approval "
                '(<a href="{}">approval {}</a>): nothing was sent to Stripe yet.',
                done,
                amount,
                link,
                outcome.pk,
            )
        return messages.INFO, f"{done}; its full refund of {amount} was {outcome.status}."
    if outcome.status == Refund.Status.SUCCEEDED:
        return messages.SUCCESS, f"{done}; {amount} refunded in full."
    level, text = refund_outcome_message(outcome)
    return level, f"{done}. {text}"


def _payment_of(booking: Booking, wanted: str | None) -> Payment | None:
    """The payment the page is about: the one asked for (it must be the booking's),
    else the first one that can still be refunded, else the latest one paid."""
    payments = booking.payments.exclude(paid_at__isnull=True)
    if wanted:
        if not wanted.isascii() or not wanted.isdigit():
            raise Http404("no such payment")
        return get_object_or_404(payments, pk=int(wanted))
    return (
        payments.filter(status__in=Payment.REFUNDABLE).order_by("paid_at", "pk").first()
        or payments.order_by("-paid_at").first()
    )


def _shown(standing: RefundStanding | None) -> dict[str, str] | None:
    """The standing's amounts as people read them."""
    if standing is None:
        return None
    currency = standing.currency

    def money(amount: int) -> str:
        return format_money(amount, currency)

    return {
        "paid": money(standing.payment.amount),
        "succeeded": money(standing.refunded.get("succeeded", 0)),
        "pending": money(
            standing.refunded.get("pending", 0) + standing.refunded.get("requires_action", 0)
        ),
        "failed": money(standing.refunded.get("failed", 0)),
        "remaining": money(standing.remaining),
        "policy": money(standing.policy_amount),
        "policy_remaining": money(standing.policy_remaining),
        "waiting": money(sum(a.amount for a in standing.waiting)),
    }


class DriftStateFilter(admin.SimpleListFilter):
    """Open drift by default: what is resolved stays for the record, one click away."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved"), ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        choices = iter(super().choices(changelist))
        next(choices)  # Django's "All" drops the parameter, which reads as open here
        yield from choices

    def value(self) -> str | None:
        return super().value() or "open"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Drift]) -> QuerySet[Drift]:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Drift)
class DriftAdmin(ReadOnlyAdmin):
    """What reconciliation could not repair (bookings.reconcile), for Finance and
    Support to read: counts per kind above the list, and each finding linked
    to its booking and payment. Nothing is changed from here: a person acts on the
    booking or payment, and the next run resolves the finding."""

    change_list_template = "admin/bookings/drift/change_list.html"
    list_display = (
        "kind",
        "key",
        "booking_link",
        "payment_link",
        "amounts",
        "detail",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    )
    list_filter = (DriftStateFilter, "kind")
    search_fields = ("key",)
    fields = (
        "kind",
        "key",
        "booking_link",
        "payment_link",
        "provider_ids",
        "amounts",
        "detail",
        "window_at",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    )
    readonly_fields = fields
    list_select_related = ("booking", "payment")

    @admin.display(description="booking")
    def booking_link(self, obj: Drift) -> str:
        if obj.booking_id is None:
            return "-"
        page = reverse("admin:bookings_booking_change", args=[obj.booking_id])
        return format_html('<a href="{}">Booking {}</a>', page, obj.booking_id)

    @admin.display(description="payment")
    def payment_link(self, obj: Drift) -> str:
        if obj.payment_id is None:
            return "-"
        page = reverse("admin:payments_payment_change", args=[obj.payment_id])
        return format_html('<a href="{}">Payment {}</a>', page, obj.payment_id)

    @admin.display(description="expected / in the provider")
    def amounts(self, obj: Drift) -> str:
        def shown(amount: int | None) -> str:
            if amount is None:
                return "-"
            return format_money(amount, obj.currency) if obj.currency else str(amount)

        return f"{shown(obj.amount_expected)} / {shown(obj.amount_actual)}"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        open_rows = Drift.objects.filter(resolved_at__isnull=True)
        counts = dict(open_rows.values_list("kind").annotate(n=Count("pk")).order_by("kind"))
        page = reverse("admin:bookings_drift_changelist")
        per_kind = [
            (label, counts.get(kind, 0), f"{page}?state=open&kind__exact={kind}")
            for kind, label in Drift.Kind.choices
        ]
        context = {
            **(extra_context or {}),
            "drift_counts": per_kind,
            "drift_open": sum(counts.values()),
        }
        return super().changelist_view(request, context)
