"""The sandbox's Calendly API v2: the paths, shapes, statuses and errors our client meets.

Bearer token: ``settings.CALENDLY_API_TOKEN``. Errors are Calendly's
``{"title", "message", "details"?}``. A fault armed on the dashboard (or with
``services.fault_arm``) answers the next requests with 429 + ``Retry-After`` or a 5xx.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import (
    DataDeletionRequest,
    EventType,
    Host,
    Invitee,
    Organization,
    ScheduledEvent,
    WebhookSubscription,
)
from sandbox.calendly_sandbox.resources import (
    Urls,
    event_resource,
    event_type_resource,
    invitee_resource,
    subscription_resource,
    user_resource,
)

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_DELETION_EMAILS = 350


class ApiError(Exception):
    def __init__(
        self, status: int, title: str, message: str, details: Sequence[dict[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.details = status, title, message, details

    def response(self) -> JsonResponse:
        body: dict[str, Any] = {"title": self.title, "message": self.message}
        if self.details:
            body["details"] = list(self.details)
        return JsonResponse(body, status=self.status)


def invalid(parameter: str, message: str) -> ApiError:
    return ApiError(
        400,
        "Invalid Argument",
        "The supplied parameters are invalid.",
        [{"parameter": parameter, "message": message}],
    )


NOT_FOUND = ApiError(404, "Resource Not Found", "The server could not find the requested resource.")

View = Callable[..., Any]


def api(*methods: str) -> Callable[[View], View]:
    """Method check, bearer token, injected faults, JSON in and out, Calendly's errors."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise ApiError(405, "Method Not Allowed", "This method is not supported.")
                _authenticate(request)
                fault = services.fault_take()
                if fault is not None:
                    response = ApiError(
                        fault.status,
                        "Too Many Requests" if fault.status == 429 else "Internal Server Error",
                        "Rate limit exceeded; retry later."
                        if fault.status == 429
                        else "An unexpected error occurred.",
                    ).response()
                    if fault.status in (429, 503):  # the statuses that come with a wait
                        response["Retry-After"] = str(fault.retry_after)
                    return response
                result = view(request, Urls.for_request(request), *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except ObjectDoesNotExist:
                return NOT_FOUND.response()
            if isinstance(result, HttpResponse):
                return result
            status, body = result
            return JsonResponse(body, status=status)

        return wrapped

    return decorate


def _authenticate(request: HttpRequest) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.CALENDLY_API_TOKEN
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(401, "Unauthenticated", "The access token is invalid")


def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ApiError(400, "Invalid Argument", "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid Argument", "The request body must be a JSON object.")
    return body


def _tail(uri: str) -> str:
    """The id at the end of a URI (or a bare id)."""
    return urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]


def _host(uri: str, parameter: str = "user") -> Host:
    host = Host.objects.select_related("organization").filter(uuid=_tail(uri)).first()
    if not uri or host is None:
        raise invalid(parameter, "must be the URI of an existing user")
    return host


def _organization(uri: str) -> Organization:
    organization = Organization.objects.filter(uuid=_tail(uri)).first()
    if not uri or organization is None:
        raise invalid("organization", "must be the URI of an existing organization")
    return organization


def _by_owner(request: HttpRequest, queryset: QuerySet, host_field: str = "host") -> QuerySet:
    """Calendly's required ``user`` or ``organization`` filter of a list."""
    if request.GET.get("user"):
        return queryset.filter(**{host_field: _host(request.GET["user"])})
    if request.GET.get("organization"):
        organization = _organization(request.GET["organization"])
        return queryset.filter(**{f"{host_field}__organization": organization})
    raise invalid("user", "user or organization is required")


def _paginate(
    request: HttpRequest, queryset: QuerySet, render: Callable[[Any], dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    try:
        count = int(request.GET.get("count", DEFAULT_COUNT))
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_COUNT:
        raise invalid("count", f"must be between 1 and {MAX_COUNT}")
    token = request.GET.get("page_token", "")
    try:
        offset = int(token.removeprefix("p")) if token else 0
    except ValueError:
        offset = -1
    if offset < 0 or (token and not token.startswith("p")):
        raise invalid("page_token", "is invalid")
    rows = list(queryset[offset : offset + count + 1])
    page, more = rows[:count], len(rows) > count

    def link(at: int | None) -> tuple[str | None, str | None]:
        if at is None:
            return None, None
        params = {k: v for k, v in request.GET.items() if k != "page_token"}
        params["count"] = str(count)
        params["page_token"] = f"p{at}"
        return request.build_absolute_uri(request.path) + "?" + urlencode(params), f"p{at}"

    next_page, next_token = link(offset + count if more else None)
    previous_page, previous_token = link(max(0, offset - count) if offset else None)
    return 200, {
        "collection": [render(row) for row in page],
        "pagination": {
            "count": len(page),
            "next_page": next_page,
            "previous_page": previous_page,
            "next_page_token": next_token,
            "previous_page_token": previous_token,
        },
    }


# --- Endpoints ------------------------------------------------------------------------


@api("GET")
def root(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    raise NOT_FOUND


@api("GET")
def users_me(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    return 200, {"resource": user_resource(services.current_host(), urls)}


@api("GET")
def user_detail(request: HttpRequest, urls: Urls, uuid: str) -> tuple[int, dict[str, Any]]:
    host = Host.objects.select_related("organization").get(uuid=uuid)
    return 200, {"resource": user_resource(host, urls)}


@api("GET")
def event_types(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    queryset = _by_owner(
        request, EventType.objects.select_related("host").order_by("created_at", "id")
    )
    if request.GET.get("active") in ("true", "false"):
        queryset = queryset.filter(active=request.GET["active"] == "true")
    return _paginate(request, queryset, lambda row: event_type_resource(row, urls))


@api("GET")
def event_type_detail(request: HttpRequest, urls: Urls, uuid: str) -> tuple[int, dict[str, Any]]:
    return 200, {
        "resource": event_type_resource(
            EventType.objects.select_related("host").get(uuid=uuid), urls
        )
    }


def _event(uuid: str) -> ScheduledEvent:
    return ScheduledEvent.objects.select_related("host", "event_type").get(uuid=uuid)


@api("GET")
def event_detail(request: HttpRequest, urls: Urls, uuid: str) -> tuple[int, dict[str, Any]]:
    return 200, {"resource": event_resource(_event(uuid), urls)}


def _time(request: HttpRequest, name: str) -> Any:
    value = request.GET.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, "must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise invalid(name, "must carry a time zone")
    return parsed


@api("GET")
def events_list(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    """``GET /scheduled_events``: by user or organization, with Calendly's filters."""
    queryset = _by_owner(request, ScheduledEvent.objects.select_related("host", "event_type"))
    if request.GET.get("invitee_email"):
        queryset = queryset.filter(invitees__email__iexact=request.GET["invitee_email"])
    if request.GET.get("status") in ("active", "canceled"):
        queryset = queryset.filter(status=request.GET["status"])
    if (low := _time(request, "min_start_time")) is not None:
        queryset = queryset.filter(start_time__gte=low)
    if (high := _time(request, "max_start_time")) is not None:
        queryset = queryset.filter(start_time__lte=high)
    order = "-start_time" if request.GET.get("sort") == "start_time:desc" else "start_time"
    return _paginate(
        request, queryset.distinct().order_by(order, "id"), lambda row: event_resource(row, urls)
    )


@api("GET")
def event_invitees(request: HttpRequest, urls: Urls, uuid: str) -> tuple[int, dict[str, Any]]:
    """``GET /scheduled_events/{uuid}/invitees``, filtered by ``email`` and ``status``."""
    queryset = Invitee.objects.select_related("scheduled_event", "old_invitee").filter(
        scheduled_event=_event(uuid)
    )
    if request.GET.get("email"):
        queryset = queryset.filter(email__iexact=request.GET["email"])
    if request.GET.get("status") in ("active", "canceled"):
        queryset = queryset.filter(status=request.GET["status"])
    return _paginate(request, queryset, lambda row: invitee_resource(row, urls))


@api("GET")
def invitee_detail(
    request: HttpRequest, urls: Urls, event_uuid: str, uuid: str
) -> tuple[int, dict[str, Any]]:
    invitee = Invitee.objects.select_related("scheduled_event", "old_invitee").get(
        uuid=uuid, scheduled_event__uuid=event_uuid
    )
    return 200, {"resource": invitee_resource(invitee, urls)}


@api("POST")
def event_cancellation(request: HttpRequest, urls: Urls, uuid: str) -> tuple[int, dict[str, Any]]:
    event = _event(uuid)
    reason = str(_json(request).get("reason") or "")[:10000]
    if event.end_time <= timezone.now() or not services.event_cancel(
        event=event, reason=reason, urls=urls
    ):
        raise ApiError(403, "Permission Denied", "Event in the past or already canceled")
    event.refresh_from_db()
    return 201, {
        "resource": {
            "canceled_by": event.canceled_by,
            "reason": event.cancel_reason,
            "canceler_type": event.canceler_type,
            "created_at": event_resource(event, urls)["cancellation"]["created_at"],
        }
    }


@api("GET", "POST")
def webhook_subscriptions(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    if request.method == "POST":
        return _subscription_create(_json(request), urls)
    services.subscriptions_follow_deliveries()
    organization = _organization(request.GET.get("organization", ""))
    scope = request.GET.get("scope", "")
    if scope not in WebhookSubscription.Scope.values:
        raise invalid("scope", "must be organization or user")
    queryset = WebhookSubscription.objects.filter(
        organization=organization, scope=scope
    ).select_related("organization", "host")
    if scope == WebhookSubscription.Scope.USER:
        if not request.GET.get("user"):
            raise invalid("user", "is required for the user scope")
        queryset = queryset.filter(host=_host(request.GET["user"]))
    return _paginate(request, queryset, lambda row: subscription_resource(row, urls))


def _subscription_create(body: dict[str, Any], urls: Urls) -> tuple[int, dict[str, Any]]:
    url = body.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise invalid("url", "must be an http(s) URL")
    events = body.get("events")
    if (
        not isinstance(events, list)
        or not events
        or any(e not in services.WEBHOOK_EVENTS for e in events)
    ):
        raise invalid("events", f"must be a list of: {', '.join(services.WEBHOOK_EVENTS)}")
    organization = _organization(str(body.get("organization") or ""))
    scope = body.get("scope")
    if scope not in WebhookSubscription.Scope.values:
        raise invalid("scope", "must be organization or user")
    host = None
    if scope == WebhookSubscription.Scope.USER:
        host = _host(str(body.get("user") or ""))
        if host.organization_id != organization.pk:
            raise ApiError(403, "Permission Denied", "The user is not in this organization.")
    signing_key = body.get("signing_key") or secrets.token_urlsafe(32)
    if not isinstance(signing_key, str):
        raise invalid("signing_key", "must be a string")
    if WebhookSubscription.objects.filter(
        callback_url=url, organization=organization, scope=scope, host=host
    ).exists():
        raise ApiError(409, "Already Exists", "Hook with this url already exists")
    subscription = WebhookSubscription.objects.create(
        callback_url=url,
        events=list(dict.fromkeys(events)),
        scope=scope,
        organization=organization,
        host=host,
        signing_key=signing_key,
    )
    return 201, {"resource": subscription_resource(subscription, urls)}


@api("GET", "DELETE")
def webhook_subscription_detail(request: HttpRequest, urls: Urls, uuid: str) -> HttpResponse:
    services.subscriptions_follow_deliveries()
    subscription = WebhookSubscription.objects.select_related("organization", "host").get(uuid=uuid)
    if request.method == "DELETE":
        subscription.delete()
        return HttpResponse(status=204)
    return JsonResponse({"resource": subscription_resource(subscription, urls)})


@api("POST")
def invitee_data_deletion(request: HttpRequest, urls: Urls) -> tuple[int, dict[str, Any]]:
    emails = _json(request).get("emails")
    if (
        not isinstance(emails, list)
        or not 1 <= len(emails) <= MAX_DELETION_EMAILS
        or not all(isinstance(e, str) and "@" in e for e in emails)
    ):
        raise invalid("emails", f"must list 1 to {MAX_DELETION_EMAILS} email addresses")
    erased = services.invitees_erase(emails=emails)
    DataDeletionRequest.objects.create(email_count=len(emails), invitees_erased=erased)
    return 202, {}
