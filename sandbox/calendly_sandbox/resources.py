"""Rendering sandbox rows as Calendly API v2 resources and webhook payloads.

Resource URIs are absolute URLs to this sandbox's API on the host the request came
in on, so a client that follows them (as ours does) stays in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from sandbox.calendly_sandbox.models import (
    EventType,
    Host,
    Invitee,
    Organization,
    ScheduledEvent,
    WebhookSubscription,
)

NS = "sandbox:sandbox_calendly"


def stamp(value: datetime | None) -> str | None:
    """Calendly's timestamps: UTC, microseconds, ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Urls:
    """Where things live, as seen from one request."""

    site: str  # scheme://host[:port]

    @classmethod
    def for_request(cls, request: HttpRequest) -> Urls:
        return cls(site=request.build_absolute_uri("/").rstrip("/"))

    def _abs(self, name: str, *args: object) -> str:
        return self.site + reverse(f"{NS}:{name}", args=args)

    @property
    def api(self) -> str:
        return self._abs("api-root").rstrip("/")

    def user(self, host: Host) -> str:
        return f"{self.api}/users/{host.uuid}"

    def organization(self, organization: Organization) -> str:
        return f"{self.api}/organizations/{organization.uuid}"

    def event_type(self, event_type: EventType) -> str:
        return f"{self.api}/event_types/{event_type.uuid}"

    def event(self, event: ScheduledEvent) -> str:
        return f"{self.api}/scheduled_events/{event.uuid}"

    def invitee(self, invitee: Invitee) -> str:
        return f"{self.event(invitee.scheduled_event)}/invitees/{invitee.uuid}"

    def no_show(self, invitee: Invitee) -> str:
        return f"{self.api}/invitee_no_shows/{invitee.no_show_uuid}"

    def subscription(self, subscription: WebhookSubscription) -> str:
        return f"{self.api}/webhook_subscriptions/{subscription.uuid}"

    def host_page(self, host: Host) -> str:
        return self._abs("host", host.slug)

    def scheduling_page(self, event_type: EventType) -> str:
        return self._abs("schedule", event_type.host.slug, event_type.slug)

    def cancel_page(self, invitee: Invitee) -> str:
        return self._abs("cancel", invitee.uuid)

    def reschedule_page(self, invitee: Invitee) -> str:
        return self._abs("reschedule", invitee.uuid)


def user_resource(host: Host, urls: Urls) -> dict[str, Any]:
    return {
        "uri": urls.user(host),
        "name": host.name,
        "slug": host.slug,
        "email": host.email,
        "scheduling_url": urls.host_page(host),
        "timezone": host.timezone,
        "avatar_url": None,
        "locale": "en",
        "created_at": stamp(host.created_at),
        "updated_at": stamp(host.updated_at),
        "current_organization": urls.organization(host.organization),
        "resource_type": "User",
    }


def event_type_resource(event_type: EventType, urls: Urls) -> dict[str, Any]:
    host = event_type.host
    questions = []
    if event_type.question:
        questions.append(
            {
                "name": event_type.question,
                "type": "text",
                "position": 0,
                "enabled": True,
                "required": False,
                "answer_choices": [],
                "include_other": False,
            }
        )
    return {
        "uri": urls.event_type(event_type),
        "name": event_type.name,
        "active": event_type.active,
        "booking_method": "instant",
        "slug": event_type.slug,
        "scheduling_url": urls.scheduling_page(event_type),
        "duration": event_type.duration,
        "kind": "solo",
        "pooling_type": None,
        "type": "StandardEventType",
        "color": "#8247f5",
        "created_at": stamp(event_type.created_at),
        "updated_at": stamp(event_type.updated_at),
        "internal_note": None,
        "description_plain": None,
        "description_html": None,
        "profile": {"type": "User", "name": host.name, "owner": urls.user(host)},
        "secret": False,
        "deleted_at": None,
        "admin_managed": False,
        "custom_questions": questions,
    }


def _cancellation(row: ScheduledEvent | Invitee) -> dict[str, Any]:
    return {
        "canceled_by": row.canceled_by,
        "reason": row.cancel_reason,
        "canceler_type": row.canceler_type,
        "created_at": stamp(row.canceled_at),
    }


def event_resource(event: ScheduledEvent, urls: Urls, *, embedded: bool = False) -> dict[str, Any]:
    """``GET /scheduled_events/{uuid}``'s resource, or (``embedded``) the
    ``payload.scheduled_event`` of a webhook."""
    host = event.host
    invitees = list(event.invitees.all())
    active = sum(1 for i in invitees if i.status == Invitee.Status.ACTIVE)
    body: dict[str, Any] = {
        "uri": urls.event(event),
        "name": event.name,
    }
    if embedded:
        body |= {"meeting_notes_plain": None, "meeting_notes_html": None}
    body |= {
        "status": event.status,
        "start_time": stamp(event.start_time),
        "end_time": stamp(event.end_time),
        "event_type": urls.event_type(event.event_type),
        "location": {"type": "custom", "location": event.location},
        "invitees_counter": {"total": len(invitees), "active": active, "limit": 1},
        "created_at": stamp(event.created_at),
        "updated_at": stamp(event.updated_at),
        "event_memberships": [
            {"user": urls.user(host), "user_email": host.email, "user_name": host.name}
        ],
        "event_guests": [],
    }
    if not embedded:
        body |= {"booking_method": "instant", "calendar_event": None}
    if event.status == ScheduledEvent.Status.CANCELED:
        body["cancellation"] = _cancellation(event)
    return body


def invitee_resource(invitee: Invitee, urls: Urls, *, webhook: bool = False) -> dict[str, Any]:
    """``GET .../invitees/{uuid}``'s resource, or (``webhook``) a webhook's ``payload``."""
    new = invitee.new_invitee
    body: dict[str, Any] = {
        "cancel_url": urls.cancel_page(invitee),
        "created_at": stamp(invitee.created_at),
        "email": invitee.email,
        "event": urls.event(invitee.scheduled_event),
        "name": invitee.name,
        "first_name": invitee.first_name,
        "last_name": invitee.last_name,
        "new_invitee": urls.invitee(new) if new else None,
        "old_invitee": urls.invitee(invitee.old_invitee) if invitee.old_invitee else None,
        "questions_and_answers": invitee.questions_and_answers,
        "reschedule_url": urls.reschedule_page(invitee),
        "rescheduled": invitee.rescheduled,
        "status": invitee.status,
        "text_reminder_number": None,
        "timezone": invitee.timezone,
        "tracking": invitee.tracking,
        "updated_at": stamp(invitee.updated_at),
        "uri": urls.invitee(invitee),
        "routing_form_submission": None,
        "payment": None,
        "no_show": (
            {"uri": urls.no_show(invitee), "created_at": stamp(invitee.no_show_at)}
            if invitee.no_show_uuid
            else None
        ),
        "reconfirmation": None,
    }
    if invitee.status == Invitee.Status.CANCELED:
        body["cancellation"] = _cancellation(invitee)
    if webhook:
        body["scheduling_method"] = None
        body["invitee_scheduled_by"] = None
        body["scheduled_event"] = event_resource(invitee.scheduled_event, urls, embedded=True)
    else:
        body["canceled"] = invitee.status == Invitee.Status.CANCELED
    return body


def subscription_resource(subscription: WebhookSubscription, urls: Urls) -> dict[str, Any]:
    return {
        "uri": urls.subscription(subscription),
        "callback_url": subscription.callback_url,
        "created_at": stamp(subscription.created_at),
        "updated_at": stamp(subscription.updated_at),
        "retry_started_at": stamp(subscription.retry_started_at),
        "state": subscription.state,
        "events": list(subscription.events),
        "scope": subscription.scope,
        "organization": urls.organization(subscription.organization),
        "user": urls.user(subscription.host) if subscription.host else None,
        "group": None,
        "creator": urls.user(subscription.host) if subscription.host else None,
    }
