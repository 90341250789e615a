"""What to do with each event type: filled by the domain apps, read by the pipeline.

A domain app declares its handlers in its own ``webhook_handlers.py``::

    from webhooks.registry import Event, RetryLater, handles

    @handles("stripe", "checkout.session.completed")
    def checkout_completed(event: Event) -> str | None:
        session = stripe_gateway.retrieve_checkout_session(event.object_id)  # re-read
        payment = Payment.objects.filter(checkout_session_id=session.id).first()
        if payment is None:
            raise RetryLater("the booking for this session is not recorded yet")
        ...

The contract:

- A handler runs with no transaction open (autocommit). It asks the provider first
  and then writes, each consistent step in a short ``transaction.atomic()`` of its
  own: a provider call inside a transaction holds a connection and row locks for as
  long as the provider takes (config/outgoing.py refuses it in the test profile).
  The event is marked processed after the handler returns.
- It must be idempotent: a worker that dies after some of its steps committed leaves
  the event to be handled again (the sweeper), a task can run twice (Redis redelivers
  a task whose worker died), and a replay runs it again on purpose. Each step checks
  what is done already (forward-only transitions, get-or-create, a row lock).
- Money and slot changes re-read the provider (the Stripe object, the Calendly
  invitee) before acting: the payload says what happened, the provider says what is
  true now.
- An event that came before its prerequisite raises :class:`RetryLater`. A
  ``core.providers.ProviderError`` marked ``permanent`` (the provider does not know
  the object, or calls the request invalid) ends the event ``ignored``, with the
  reason recorded: asking again would get the same answer. Any other exception is
  a failure, retried with backoff and finally a dead letter.
- Return ``IGNORED`` when the event is about nothing of ours; anything else counts
  as processed.

Event types with no handler are not subscribed: the endpoint answers 200 and
stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

IGNORED = "ignored"


@dataclass(frozen=True)
class Event:
    """A stored event, as a handler sees it."""

    pk: int
    provider: str
    event_id: str
    event_type: str
    data: Mapping[str, Any]  # the whole body, decrypted
    received_at: datetime
    attempt: int  # 1 on the first try

    @property
    def object_id(self) -> str | None:
        """Stripe: ``data.object.id``; Calendly: the invitee (or no-show) URI."""
        if self.provider == "stripe":
            found = self.data["data"]["object"]["id"]
        else:
            found = self.data["payload"].get("uri")
        return str(found) if found is not None else None


class RetryLater(Exception):  # noqa: N818 (a request, not an error)
    """The event came early: try again later (counted against the attempts)."""

    def __init__(self, reason: str, *, delay: timedelta | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


Handler = Callable[[Event], str | None]


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}

    def register(self, provider: str, event_type: str, handler: Handler) -> None:
        key = (provider, event_type)
        existing = self._handlers.get(key)
        if existing is not None and existing is not handler:
            raise ImproperlyConfigured(
                f"{provider} {event_type} already has a handler "
                f"({existing.__module__}.{existing.__qualname__})"
            )
        self._handlers[key] = handler

    def unregister(self, provider: str, event_type: str) -> None:
        self._handlers.pop((provider, event_type), None)

    def handler(self, provider: str, event_type: str) -> Handler | None:
        return self._handlers.get((provider, event_type))

    def subscribed(self, provider: str, event_type: str) -> bool:
        return (provider, event_type) in self._handlers

    def event_types(self, provider: str) -> list[str]:
        return sorted(t for p, t in self._handlers if p == provider)

    @contextmanager
    def replaced(self, handlers: Mapping[tuple[str, str], Handler]) -> Iterator[None]:
        """Only ``handlers`` while the block runs (the pipeline's own tests), then
        the registered ones again."""
        saved = self._handlers
        self._handlers = dict(handlers)
        try:
            yield
        finally:
            self._handlers = saved


registry = Registry()


def handles(provider: str, *event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function for these event types of ``provider``."""

    def decorate(handler: Handler) -> Handler:
        for event_type in event_types:
            registry.register(provider, event_type, handler)
        return handler

    return decorate
