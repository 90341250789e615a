"""Calendly API v2 client: the only code that talks to Calendly.

Every request is wrapped in ``config.outgoing.provider_call`` (logged with the
token's label, never the token), retried with exponential backoff on 429 and 5xx
(honouring ``Retry-After``) within a bounded number of attempts and a bounded total
wait, and answered with frozen dataclasses or one of this module's exceptions.
Settings are read at call time, so the sandbox and the tests can point it elsewhere.

Nothing here logs personal data: exceptions carry Calendly's ``title`` and
``message`` and the names of invalid parameters, never the values sent, and the
dataclasses holding names and emails leave them out of their ``repr``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from config.outgoing import key_label, provider_call
from core.providers import ProviderError

logger = logging.getLogger(__name__)

PROVIDER = "calendly"
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
MAX_ATTEMPTS = 4
MAX_TOTAL_WAIT = 20.0  # seconds spent sleeping between attempts, at most
BACKOFF_BASE = 0.5
MAX_PAGES = 100  # 100 pages of 100: far beyond anything one account holds
PAGE_SIZE = 100  # Calendly's maximum ``count``

# Calendly ids: 16 upper-case characters in older resources, UUIDs in newer ones.
_ID = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
_ID_RE = re.compile(rf"^{_ID}$")
COLLECTIONS = frozenset(
    {
        "users",
        "organizations",
        "groups",
        "event_types",
        "scheduled_events",
        "invitees",
        "invitee_no_shows",
        "webhook_subscriptions",
        "routing_form_submissions",
        "cancellations",
        "reschedulings",
    }
)


# --- Errors ---------------------------------------------------------------------------


class CalendlyError(ProviderError):
    """A Calendly call failed. ``title`` and ``message`` are Calendly's own words.

    Not ``permanent`` unless a subclass says so (an unknown kind of failure is retried).
    """

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        title: str = "",
        operation: str = "",
        parameters: Sequence[str] = (),
    ) -> None:
        self.status = status
        self.title = title
        self.message = message
        self.operation = operation
        # Only the names of invalid parameters: their messages may echo what we sent.
        self.parameters = tuple(parameters)
        super().__init__(
            f"calendly {operation or 'call'} failed"
            + (f" ({status})" if status is not None else "")
            + (f": {title}" if title else "")
            + (f": {message}" if message else "")
        )


class InvalidRequest(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """400, 409, 422: what we sent was refused; retrying will not help."""

    permanent = True


class InvalidUriError(InvalidRequest, ValueError):
    """A value that is not the Calendly URI (or id) it should be: a signed event whose
    invitee link is garbage is refused the same way every time (``permanent``), so the
    event ends ignored instead of retried; still a ValueError for parsing code."""


class Conflict(InvalidRequest):
    """409: the resource already exists (e.g. a webhook subscription for this URL)."""


class Unauthorized(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """401: the token is missing, wrong, expired or revoked."""


class Forbidden(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """403: the token may not do this (plan, role, or e.g. an event already canceled)."""


class NotFound(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """404."""

    permanent = True


class RateLimited(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """429, still, after every retry the budget allowed."""


class Unavailable(CalendlyError):  # noqa: N818 (the names the issue specifies)
    """5xx or no connection, after every retry the budget allowed."""


_ERRORS: dict[int, type[CalendlyError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: RateLimited,
}


# --- Results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendlyUser:
    uri: str
    uuid: str
    name: str = field(repr=False)
    slug: str
    scheduling_url: str
    timezone: str
    current_organization: str


@dataclass(frozen=True)
class EventType:
    uri: str
    uuid: str
    name: str
    slug: str
    duration: int
    active: bool
    scheduling_url: str


@dataclass(frozen=True)
class Cancellation:
    canceled_by: str = field(repr=False)  # a person's name
    reason: str = field(repr=False)
    canceler_type: str
    created_at: datetime | None


@dataclass(frozen=True)
class ScheduledEvent:
    uri: str
    uuid: str
    name: str
    status: str
    start_time: datetime
    end_time: datetime
    event_type_uri: str
    location: Mapping[str, Any] | None
    cancellation: Cancellation | None
    # ``invitees_counter``: fewer active than total means someone canceled.
    invitees_total: int | None = None
    invitees_active: int | None = None


@dataclass(frozen=True)
class Tracking:
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None


@dataclass(frozen=True)
class QuestionAnswer:
    question: str
    answer: str = field(repr=False)
    position: int


@dataclass(frozen=True)
class NoShow:
    uri: str
    created_at: datetime | None


@dataclass(frozen=True)
class Invitee:
    uri: str
    uuid: str
    event_uri: str
    email: str = field(repr=False)
    name: str = field(repr=False)
    first_name: str | None = field(repr=False)
    last_name: str | None = field(repr=False)
    status: str
    timezone: str | None
    questions_and_answers: tuple[QuestionAnswer, ...] = field(repr=False)
    tracking: Tracking
    rescheduled: bool
    old_invitee: str | None
    new_invitee: str | None
    cancel_url: str
    reschedule_url: str
    no_show: NoShow | None
    cancellation: Cancellation | None
    created_at: datetime | None

    @property
    def event_uuid(self) -> str:
        return uuid_from_uri(self.uri, "scheduled_events")


@dataclass(frozen=True)
class WebhookSubscription:
    uri: str
    uuid: str
    callback_url: str
    events: tuple[str, ...]
    scope: str
    state: str
    organization: str
    user: str | None


# --- URIs -------------------------------------------------------------------------------


def uuid_from_uri(uri_or_uuid: str, kind: str | None = None) -> str:
    """The id in a Calendly URI, whatever its host and with or without ``/api/v2/``.

    ``kind`` names the collection (``"scheduled_events"``, ``"invitees"``, ...); without
    it the id after the last known collection is returned. A bare id is returned as is.
    """
    value = (uri_or_uuid or "").strip()
    if _ID_RE.match(value):
        return value
    if kind is not None and kind not in COLLECTIONS:
        raise ValueError(f"unknown Calendly collection {kind!r}")
    segments = [s for s in (urlsplit(value).path if "://" in value else value).split("/") if s]
    found = [
        segments[i + 1]
        for i, segment in enumerate(segments[:-1])
        if (segment == kind if kind else segment in COLLECTIONS) and _ID_RE.match(segments[i + 1])
    ]
    if not found:
        raise InvalidUriError(f"not a Calendly {kind or 'resource'} URI", title="Bad URI")
    return found[-1]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("Calendly returned a naive timestamp")
    return parsed


def _required_time(value: str | None) -> datetime:
    parsed = _parse_time(value)
    if parsed is None:
        raise ValueError("Calendly returned no timestamp")
    return parsed


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_user(data: Mapping[str, Any]) -> CalendlyUser:
    return CalendlyUser(
        uri=data["uri"],
        uuid=uuid_from_uri(data["uri"], "users"),
        name=data.get("name") or "",
        slug=data.get("slug") or "",
        scheduling_url=data.get("scheduling_url") or "",
        timezone=data.get("timezone") or "",
        current_organization=data.get("current_organization") or "",
    )


def parse_event_type(data: Mapping[str, Any]) -> EventType:
    return EventType(
        uri=data["uri"],
        uuid=uuid_from_uri(data["uri"], "event_types"),
        name=data.get("name") or "",
        slug=data.get("slug") or "",
        duration=int(data.get("duration") or 0),
        active=bool(data.get("active")),
        scheduling_url=data.get("scheduling_url") or "",
    )


def parse_cancellation(data: Mapping[str, Any] | None) -> Cancellation | None:
    if not data:
        return None
    return Cancellation(
        canceled_by=data.get("canceled_by") or "",
        reason=data.get("reason") or "",
        canceler_type=data.get("canceler_type") or "",
        created_at=_parse_time(data.get("created_at")),
    )


def parse_scheduled_event(data: Mapping[str, Any]) -> ScheduledEvent:
    counter = data.get("invitees_counter") or {}
    return ScheduledEvent(
        uri=data["uri"],
        uuid=uuid_from_uri(data["uri"], "scheduled_events"),
        name=data.get("name") or "",
        status=data.get("status") or "",
        start_time=_required_time(data.get("start_time")),
        end_time=_required_time(data.get("end_time")),
        event_type_uri=data.get("event_type") or "",
        location=data.get("location"),
        cancellation=parse_cancellation(data.get("cancellation")),
        invitees_total=counter.get("total"),
        invitees_active=counter.get("active"),
    )


def parse_invitee(data: Mapping[str, Any]) -> Invitee:
    tracking = data.get("tracking") or {}
    no_show = data.get("no_show")
    return Invitee(
        uri=data["uri"],
        uuid=uuid_from_uri(data["uri"], "invitees"),
        event_uri=data.get("event") or "",
        email=data.get("email") or "",
        name=data.get("name") or "",
        first_name=data.get("first_name"),
        last_name=data.get("last_name"),
        status=data.get("status") or "",
        timezone=data.get("timezone"),
        questions_and_answers=tuple(
            QuestionAnswer(
                question=qa.get("question") or "",
                answer=qa.get("answer") or "",
                position=int(qa.get("position") or 0),
            )
            for qa in data.get("questions_and_answers") or ()
        ),
        tracking=Tracking(**{key: tracking.get(key) for key in Tracking.__dataclass_fields__}),
        rescheduled=bool(data.get("rescheduled")),
        old_invitee=data.get("old_invitee"),
        new_invitee=data.get("new_invitee"),
        cancel_url=data.get("cancel_url") or "",
        reschedule_url=data.get("reschedule_url") or "",
        no_show=(
            NoShow(uri=no_show["uri"], created_at=_parse_time(no_show.get("created_at")))
            if no_show
            else None
        ),
        cancellation=parse_cancellation(data.get("cancellation")),
        created_at=_parse_time(data.get("created_at")),
    )


def parse_subscription(data: Mapping[str, Any]) -> WebhookSubscription:
    return WebhookSubscription(
        uri=data["uri"],
        uuid=uuid_from_uri(data["uri"], "webhook_subscriptions"),
        callback_url=data.get("callback_url") or "",
        events=tuple(data.get("events") or ()),
        scope=data.get("scope") or "",
        state=data.get("state") or "",
        organization=data.get("organization") or "",
        user=data.get("user"),
    )


# --- The client ---------------------------------------------------------------------------


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return max(0.0, seconds)


class CalendlyClient:
    """One ``requests.Session`` per client; cheap to create, safe to reuse in a thread."""

    def __init__(
        self,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        max_total_wait: float = MAX_TOTAL_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        token: str | None = None,
    ) -> None:
        """``token``: another account's token; by default CALENDLY_API_TOKEN at call time."""
        self._token = token
        self.max_attempts = max(1, max_attempts)
        self.max_total_wait = max_total_wait
        self._sleep = sleep
        self.session = session or requests.Session()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> CalendlyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --

    @property
    def base(self) -> str:
        return settings.CALENDLY_API_BASE.rstrip("/")

    def _url(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.base}/{path_or_url.lstrip('/')}"
        # Pagination links are absolute: follow them only to the API we were given.
        target, base = urlsplit(path_or_url), urlsplit(self.base)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise InvalidRequest("link points outside the Calendly API", title="Bad link")
        return path_or_url

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Send one request, retrying what may be retried; the decoded JSON body."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        url = self._url(path)
        token = self._token or settings.CALENDLY_API_TOKEN
        label = key_label(token, kind="pat")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            response: requests.Response | None = None
            failure: requests.RequestException | None = None
            with provider_call(PROVIDER, operation, key_label=label) as call:
                try:
                    response = self.session.request(
                        method,
                        url,
                        params=params,
                        json=json,
                        headers=headers,
                        timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                        # A redirect would carry the token elsewhere: treat it as an error.
                        allow_redirects=False,
                    )
                    call.status = response.status_code
                    # The body is read: hand the connection back to the pool now, so
                    # a response kept alive by an exception's traceback holds none.
                    response.close()
                except requests.RequestException as exc:
                    call.error = type(exc).__name__
                    failure = exc

            retryable = False
            delay: float | None = None
            if failure is not None:
                # A POST that timed out may have been applied: only repeat safe calls.
                retryable = idempotent
            elif response is not None and (
                response.status_code == 429 or (response.status_code >= 500 and idempotent)
            ):
                retryable = True
                delay = _retry_after(response)
            elif response is not None:
                return self._decode(response, operation)

            if delay is None:
                delay = BACKOFF_BASE * 2 ** (attempt - 1)
            if retryable and attempt < self.max_attempts and waited + delay <= self.max_total_wait:
                logger.warning(
                    "calendly.retry",
                    extra={
                        "operation": operation,
                        "attempt": attempt,
                        "status": response.status_code if response is not None else None,
                        "error": type(failure).__name__ if failure else "",
                        "delay_s": delay,
                    },
                )
                self._sleep(delay)
                waited += delay
                continue

            if failure is not None:
                raise Unavailable(
                    "Calendly could not be reached",
                    title=type(failure).__name__,
                    operation=operation,
                ) from failure
            assert response is not None  # noqa: S101 (narrowing for the type checker)
            raise self._error(response, operation)

    @staticmethod
    def _decode(response: requests.Response, operation: str) -> dict[str, Any]:
        if response.status_code >= 400 or 300 <= response.status_code < 400:
            raise CalendlyClient._error(response, operation)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise Unavailable(
                "Calendly answered with something other than JSON",
                status=response.status_code,
                operation=operation,
            ) from exc
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _error(response: requests.Response, operation: str) -> CalendlyError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        details = body.get("details") or []
        status = response.status_code
        cls = _ERRORS.get(status) or (Unavailable if status >= 500 else CalendlyError)
        return cls(
            str(body.get("message") or "")[:300],
            status=status,
            title=str(body.get("title") or "")[:100],
            operation=operation,
            parameters=[
                str(d.get("parameter"))[:100]
                for d in details
                if isinstance(d, dict) and d.get("parameter")
            ],
        )

    def _paginate(
        self, path: str, *, operation: str, params: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: Mapping[str, Any] | None = params
        for _ in range(MAX_PAGES):
            assert url is not None  # noqa: S101 (narrowing)
            body = self._request("GET", url, operation=operation, params=query)
            yield from body.get("collection") or ()
            url = (body.get("pagination") or {}).get("next_page")
            if not url:
                return
            query = None  # next_page carries every parameter
        logger.warning("calendly.pagination-truncated", extra={"operation": operation})

    # -- operations --

    def current_user(self) -> CalendlyUser:
        body = self._request("GET", "users/me", operation="users.me")
        return parse_user(body["resource"])

    def list_event_types(self, user_uri: str, *, count: int = PAGE_SIZE) -> list[EventType]:
        return [
            parse_event_type(item)
            for item in self._paginate(
                "event_types",
                operation="event_types.list",
                params={"user": user_uri, "count": count},
            )
        ]

    def get_scheduled_event(self, uuid_or_uri: str) -> ScheduledEvent:
        uuid = uuid_from_uri(uuid_or_uri, "scheduled_events")
        body = self._request("GET", f"scheduled_events/{uuid}", operation="scheduled_events.get")
        return parse_scheduled_event(body["resource"])

    def get_invitee(self, event_uuid: str, invitee_uuid: str) -> Invitee:
        event = uuid_from_uri(event_uuid, "scheduled_events")
        invitee = uuid_from_uri(invitee_uuid, "invitees")
        body = self._request(
            "GET",
            f"scheduled_events/{event}/invitees/{invitee}",
            operation="invitees.get",
        )
        return parse_invitee(body["resource"])

    def get_invitee_by_uri(self, invitee_uri: str) -> Invitee:
        """An invitee from its full URI (``.../scheduled_events/{e}/invitees/{i}``)."""
        return self.get_invitee(
            uuid_from_uri(invitee_uri, "scheduled_events"), uuid_from_uri(invitee_uri, "invitees")
        )

    def find_invitee(
        self, invitee_uuid: str, *, email: str, start_time: datetime
    ) -> Invitee | None:
        """The invitee a scheduling redirect names: Calendly's redirect carries the
        invitee's id but not its event's, so look among the organization's events
        starting at ``start_time`` with an invitee of that email. None if not there."""
        wanted = uuid_from_uri(invitee_uuid, "invitees")
        organization = self.current_user().current_organization
        window = {
            "organization": organization,
            "invitee_email": email,
            "min_start_time": _iso(start_time - timedelta(seconds=1)),
            "max_start_time": _iso(start_time + timedelta(seconds=1)),
            "count": PAGE_SIZE,
        }
        for event in self._paginate(
            "scheduled_events", operation="scheduled_events.list", params=window
        ):
            event_uuid = uuid_from_uri(event["uri"], "scheduled_events")
            for item in self._paginate(
                f"scheduled_events/{event_uuid}/invitees",
                operation="invitees.list",
                params={"email": email, "count": PAGE_SIZE},
            ):
                if uuid_from_uri(item["uri"], "invitees") == wanted:
                    return parse_invitee(item)
        return None

    def list_scheduled_events(
        self,
        *,
        organization: str | None = None,
        user: str | None = None,
        status: str | None = None,
        min_start_time: datetime | None = None,
        max_start_time: datetime | None = None,
        count: int = PAGE_SIZE,
    ) -> list[ScheduledEvent]:
        """Scheduled events of an organization (an admin's token) or of a user, by start
        time, earliest first. Calendly filters by start time and status only: it has no
        "updated since" filter and no event log, so a cancellation is found by listing
        the canceled events of the appointments still to come (reconciliation)."""
        if not organization and not user:
            raise InvalidRequest(
                "name an organization or a user", operation="scheduled_events.list"
            )
        if status not in (None, "active", "canceled"):
            raise ValueError("status is active or canceled")
        params: dict[str, Any] = {"count": count, "sort": "start_time:asc"}
        for name, value in (("organization", organization), ("user", user), ("status", status)):
            if value:
                params[name] = value
        if min_start_time is not None:
            params["min_start_time"] = _iso(min_start_time)
        if max_start_time is not None:
            params["max_start_time"] = _iso(max_start_time)
        return [
            parse_scheduled_event(item)
            for item in self._paginate(
                "scheduled_events", operation="scheduled_events.list", params=params
            )
        ]

    def list_event_invitees(
        self, event_uuid: str, *, status: str | None = None, count: int = PAGE_SIZE
    ) -> list[Invitee]:
        """The invitees of a scheduled event (a group event has several; one can cancel
        while the event stays active)."""
        uuid = uuid_from_uri(event_uuid, "scheduled_events")
        if status not in (None, "active", "canceled"):
            raise ValueError("status is active or canceled")
        params: dict[str, Any] = {"count": count}
        if status:
            params["status"] = status
        return [
            parse_invitee(item)
            for item in self._paginate(
                f"scheduled_events/{uuid}/invitees", operation="invitees.list", params=params
            )
        ]

    def cancel_event(self, event_uuid: str, reason: str = "") -> Cancellation:
        """Cancel a scheduled event (frees the slot); Calendly then sends
        ``invitee.canceled`` for its invitees. Calendly refuses a second cancel (403)."""
        uuid = uuid_from_uri(event_uuid, "scheduled_events")
        body = self._request(
            "POST",
            f"scheduled_events/{uuid}/cancellation",
            operation="scheduled_events.cancel",
            json={"reason": reason},
            idempotent=True,  # a repeat is refused, never doubled
        )
        cancellation = parse_cancellation(body.get("resource"))
        if cancellation is None:
            raise Unavailable("Calendly returned no cancellation", operation="cancel")
        return cancellation

    def create_webhook_subscription(
        self,
        url: str,
        events: Sequence[str],
        *,
        organization: str,
        user: str | None = None,
        scope: str = "user",
        signing_key: str | None = None,
    ) -> WebhookSubscription:
        payload: dict[str, Any] = {
            "url": url,
            "events": list(events),
            "organization": organization,
            "scope": scope,
            "signing_key": signing_key or settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0],
        }
        if user:
            payload["user"] = user
        body = self._request(
            "POST", "webhook_subscriptions", operation="webhook_subscriptions.create", json=payload
        )
        return parse_subscription(body["resource"])

    def list_webhook_subscriptions(
        self, organization: str, scope: str, user: str | None = None, *, count: int = PAGE_SIZE
    ) -> list[WebhookSubscription]:
        params: dict[str, Any] = {"organization": organization, "scope": scope, "count": count}
        if user:
            params["user"] = user
        return [
            parse_subscription(item)
            for item in self._paginate(
                "webhook_subscriptions", operation="webhook_subscriptions.list", params=params
            )
        ]

    def get_webhook_subscription(self, uuid_or_uri: str) -> WebhookSubscription:
        uuid = uuid_from_uri(uuid_or_uri, "webhook_subscriptions")
        body = self._request(
            "GET", f"webhook_subscriptions/{uuid}", operation="webhook_subscriptions.get"
        )
        return parse_subscription(body["resource"])

    def delete_webhook_subscription(self, uuid_or_uri: str) -> None:
        uuid = uuid_from_uri(uuid_or_uri, "webhook_subscriptions")
        self._request(
            "DELETE", f"webhook_subscriptions/{uuid}", operation="webhook_subscriptions.delete"
        )

    def request_invitee_data_deletion(self, emails: Sequence[str]) -> None:
        """Ask Calendly to delete every invitee with these emails (Enterprise; may take days)."""
        emails = [e for e in emails if e]
        if not emails:
            raise InvalidRequest("no emails given", operation="data_compliance.delete_invitees")
        self._request(
            "POST",
            "data_compliance/deletion/invitees",
            operation="data_compliance.delete_invitees",
            json={"emails": emails},
            idempotent=True,  # deleting twice deletes the same data
        )
