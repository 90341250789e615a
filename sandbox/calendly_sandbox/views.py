"""The sandbox's calendly.com pages: dashboard, scheduling, cancel, reschedule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from itertools import groupby
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from sandbox import delivery
from sandbox.access import operator_only
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.forms import (
    BookingForm,
    CancelForm,
    FaultForm,
    HostEventTypeForm,
    RescheduleForm,
    SubscriptionForm,
)
from sandbox.calendly_sandbox.models import (
    DataDeletionRequest,
    EventType,
    Fault,
    Host,
    Invitee,
    ScheduledEvent,
    WebhookSubscription,
)
from sandbox.calendly_sandbox.resources import Urls

NS = "sandbox:sandbox_calendly"
PREFILL = ("name", "email", "first_name", "last_name", "timezone", *services.UTM_KEYS)


# --- Dashboard --------------------------------------------------------------------------


def _dashboard(request: HttpRequest, **forms: Any) -> HttpResponse:
    events = ScheduledEvent.objects.select_related("host", "event_type").prefetch_related(
        Prefetch("invitees", queryset=Invitee.objects.select_related("old_invitee"))
    )
    context = {
        "hosts": Host.objects.select_related("organization").prefetch_related("event_types"),
        "events": events.order_by("-start_time")[:50],
        "subscriptions": WebhookSubscription.objects.select_related("host"),
        "deletions": DataDeletionRequest.objects.all()[:10],
        "fault": Fault.objects.filter(remaining__gt=0).first(),
        "create_form": forms.get("create_form") or HostEventTypeForm(),
        "subscription_form": forms.get("subscription_form") or SubscriptionForm(),
        "fault_form": forms.get("fault_form") or FaultForm(),
    }
    return render(request, "sandbox/calendly/dashboard.html", context, status=forms.get("status"))


@operator_only
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    delivery.wake()
    return _dashboard(request)


@operator_only
@require_POST
def host_create(request: HttpRequest) -> HttpResponse:
    form = HostEventTypeForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, create_form=form, status=400)
    data = form.cleaned_data
    event_type = services.host_with_event_type_create(
        host_name=data["host_name"],
        host_email=data["host_email"],
        host_slug=data["host_slug"],
        host_timezone=data["host_timezone"],
        event_name=data["event_name"],
        event_slug=data["event_slug"].lower(),
        duration=data["duration"],
        redirect_url=data["redirect_url"],
        question=data["question"],
    )
    messages.info(request, f"Event type {event_type} created.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def subscription_create(request: HttpRequest) -> HttpResponse:
    """A shortcut for the demo: an organization subscription, as the API would make."""
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, subscription_form=form, status=400)
    host = services.current_host()
    WebhookSubscription.objects.create(
        callback_url=form.cleaned_data["callback_url"],
        events=form.cleaned_data["events"],
        scope=WebhookSubscription.Scope.ORGANIZATION,
        organization=host.organization,
        signing_key=form.cleaned_data["signing_key"] or settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0],
    )
    messages.info(request, "Webhook subscription created.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def subscription_delete(request: HttpRequest, uuid: str) -> HttpResponse:
    get_object_or_404(WebhookSubscription, uuid=uuid).delete()
    messages.info(request, "Webhook subscription deleted.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def subscription_disable(request: HttpRequest, uuid: str) -> HttpResponse:
    """What Calendly does to a subscription whose deliveries failed for a day."""
    subscription = get_object_or_404(WebhookSubscription, uuid=uuid)
    if services.subscription_disable(subscription=subscription):
        messages.info(request, "Webhook subscription disabled: it gets no more deliveries.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def fault_set(request: HttpRequest) -> HttpResponse:
    form = FaultForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, fault_form=form, status=400)
    fault = services.fault_arm(
        status=form.cleaned_data["status"],
        count=form.cleaned_data["count"],
        retry_after=form.cleaned_data["retry_after"],
    )
    messages.info(request, f"The API will answer the {fault}.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def invitee_no_show(request: HttpRequest, uuid: str) -> HttpResponse:
    invitee = get_object_or_404(Invitee, uuid=uuid)
    if services.invitee_mark_no_show(invitee=invitee, urls=Urls.for_request(request)):
        messages.info(request, "Marked as no-show: invitee_no_show.created sent.")
    else:
        messages.info(request, "Already marked as no-show.")
    return redirect(f"{NS}:dashboard")


@operator_only
@require_POST
def event_cancel(request: HttpRequest, uuid: str) -> HttpResponse:
    event = get_object_or_404(ScheduledEvent, uuid=uuid)
    if services.event_cancel(
        event=event, reason=request.POST.get("reason", "")[:500], urls=Urls.for_request(request)
    ):
        messages.info(request, "Event canceled by the host: invitee.canceled sent.")
    return redirect(f"{NS}:dashboard")


# --- Scheduling -----------------------------------------------------------------------------


@require_safe
def host_page(request: HttpRequest, host_slug: str) -> HttpResponse:
    host = get_object_or_404(Host, slug=host_slug)
    return render(
        request,
        "sandbox/calendly/host.html",
        {"host": host, "event_types": host.event_types.filter(active=True)},
    )


def _slot_days(slots: list[datetime], zone: ZoneInfo) -> list[tuple[str, list[dict[str, str]]]]:
    """Slots grouped by the host's local day: shown in local time, posted in UTC."""
    local = [s.astimezone(zone) for s in slots]
    items = [
        {"value": s.isoformat(), "label": t.strftime("%H:%M")}
        for s, t in zip(slots, local, strict=True)
    ]
    days = groupby(zip(local, items, strict=True), key=lambda pair: pair[0].date())
    return [(day.strftime("%A %-d %B"), [item for _, item in group]) for day, group in days]


def _redirect_params(invitee: Invitee) -> dict[str, str]:
    """What Calendly appends to the redirect URL when it passes event details."""
    event, event_type = invitee.scheduled_event, invitee.scheduled_event.event_type
    zone = ZoneInfo(invitee.timezone)
    params = {
        "assigned_to": event.host.name,
        "event_type_uuid": event_type.uuid,
        "event_type_name": event_type.name,
        "event_start_time": event.start_time.astimezone(zone).isoformat(timespec="seconds"),
        "event_end_time": event.end_time.astimezone(zone).isoformat(timespec="seconds"),
        "invitee_uuid": invitee.uuid,
        "invitee_full_name": invitee.name,
        "invitee_email": invitee.email,
    }
    if invitee.first_name:
        params["invitee_first_name"] = invitee.first_name
    if invitee.last_name:
        params["invitee_last_name"] = invitee.last_name
    for qa in invitee.questions_and_answers:
        params[f"answer_{qa['position'] + 1}"] = qa["answer"]
    for key, value in invitee.tracking.items():
        if key.startswith("utm_") and value:
            params[key] = value
    return params


def _after_booking(request: HttpRequest, invitee: Invitee) -> HttpResponse:
    params = _redirect_params(invitee)
    target = invitee.scheduled_event.event_type.redirect_url
    if not target:
        return redirect(reverse(f"{NS}:booked") + "?" + urlencode(params))
    parts = urlsplit(target)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return HttpResponseRedirect(urlunsplit(parts._replace(query=query)))


def _prefill(query: Mapping[str, str], host: Host) -> dict[str, str]:
    initial = {key: query[key] for key in PREFILL if query.get(key)}
    initial.setdefault("timezone", host.timezone)
    if query.get("a1"):
        initial["answer"] = query["a1"]
    return initial


@require_http_methods(["GET", "HEAD", "POST"])
def schedule(request: HttpRequest, host_slug: str, event_type_slug: str) -> HttpResponse:
    event_type = get_object_or_404(
        EventType.objects.select_related("host"),
        host__slug=host_slug,
        slug=event_type_slug,
        active=True,
    )
    slots = services.open_slots(event_type)
    status = 200
    if request.method == "POST":
        form = BookingForm(request.POST, slots=slots, question=event_type.question)
        if form.is_valid():
            data = form.cleaned_data
            try:
                invitee = services.invitee_book(
                    event_type=event_type,
                    start=data["start"],
                    name=data["name"],
                    email=data["email"],
                    first_name=data.get("first_name") or None,
                    last_name=data.get("last_name") or None,
                    invitee_timezone=data["timezone"],
                    answer=data.get("answer") or "",
                    tracking=form.tracking(),
                    urls=Urls.for_request(request),
                )
            except services.SlotTakenError:
                form.add_error("start", "That time was just booked: pick another.")
                slots = services.open_slots(event_type)
                form.fields["start"].choices = [(s.isoformat(), s.isoformat()) for s in slots]
                status = 409
            else:
                return _after_booking(request, invitee)
        else:
            status = 409 if "start" in form.errors and request.POST.get("start") else 400
    else:
        form = BookingForm(
            initial=_prefill(request.GET, event_type.host),
            slots=slots,
            question=event_type.question,
        )
    return render(
        request,
        "sandbox/calendly/schedule.html",
        {
            "event_type": event_type,
            "host": event_type.host,
            "form": form,
            "days": _slot_days(slots, ZoneInfo(event_type.host.timezone)),
        },
        status=status,
    )


@require_safe
def booked(request: HttpRequest) -> HttpResponse:
    return render(request, "sandbox/calendly/booked.html", {"params": list(request.GET.items())})


# --- Invitee links --------------------------------------------------------------------------


def _invitee(uuid: str) -> Invitee:
    return get_object_or_404(
        Invitee.objects.select_related(
            "scheduled_event__host", "scheduled_event__event_type", "old_invitee"
        ),
        uuid=uuid,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def cancel(request: HttpRequest, uuid: str) -> HttpResponse:
    invitee = _invitee(uuid)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.invitee_cancel(
            invitee=invitee, reason=form.cleaned_data["reason"], urls=Urls.for_request(request)
        ):
            messages.info(request, "Canceled: invitee.canceled sent.")
        return redirect(f"{NS}:cancel", uuid=uuid)
    return render(request, "sandbox/calendly/cancel.html", {"invitee": invitee, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
def reschedule(request: HttpRequest, uuid: str) -> HttpResponse:
    invitee = _invitee(uuid)
    event_type = invitee.scheduled_event.event_type
    slots = services.open_slots(event_type)
    status = 200
    form = RescheduleForm(request.POST or None, slots=slots)
    if invitee.status == Invitee.Status.ACTIVE and request.method == "POST":
        if form.is_valid():
            try:
                new = services.invitee_book(
                    event_type=event_type,
                    start=form.cleaned_data["start"],
                    name=invitee.name,
                    email=invitee.email,
                    first_name=invitee.first_name,
                    last_name=invitee.last_name,
                    invitee_timezone=invitee.timezone,
                    answer=next((qa["answer"] for qa in invitee.questions_and_answers), ""),
                    tracking=invitee.tracking,
                    urls=Urls.for_request(request),
                    rescheduling=invitee,
                    reason=form.cleaned_data["reason"],
                )
            except services.SlotTakenError:
                form.add_error("start", "That time was just booked: pick another.")
                status = 409
            else:
                return _after_booking(request, new)
        else:
            status = 400
    return render(
        request,
        "sandbox/calendly/reschedule.html",
        {
            "invitee": invitee,
            "event_type": event_type,
            "form": form,
            "days": _slot_days(slots, ZoneInfo(event_type.host.timezone)),
        },
        status=status,
    )
