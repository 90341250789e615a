"""Delivering the sandbox's webhooks: after the response, signed, retried.

Providers enqueue a delivery inside their transaction; once it commits, a
dispatcher thread in this process posts it, signing each attempt with a fresh
timestamp exactly as the provider does (``t=<unix>,v1=<HMAC-SHA256(secret,
"<t>.<body>")>``). A failure is retried with exponential backoff until
SANDBOX_WEBHOOK_MAX_ATTEMPTS, then the delivery is marked failed. Every attempt is
recorded and listed on /sandbox/deliveries/.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone

from sandbox import db
from sandbox.models import Delivery, DeliveryAttempt

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = {
    Delivery.Provider.STRIPE: "Stripe-Signature",
    Delivery.Provider.CALENDLY: "Calendly-Webhook-Signature",
}
USER_AGENTS = {
    Delivery.Provider.STRIPE: "Stripe/1.0 (+https://stripe.com/docs/webhooks) slotpay-sandbox",
    Delivery.Provider.CALENDLY: "Calendly-Webhooks slotpay-sandbox",
}
# Calendly's documented timeouts; Stripe's are similar.
TIMEOUT = (10, 15)
LEASE = timedelta(seconds=60)


def signature(secret: str, body: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def backoff(attempts: int) -> timedelta:
    """Seconds before attempt ``attempts + 1``: 1, 2, 4, ... capped."""
    return timedelta(seconds=min(settings.SANDBOX_WEBHOOK_BACKOFF_CAP, 2 ** max(0, attempts - 1)))


def enqueue(
    *,
    provider: str,
    event_type: str,
    url: str,
    payload: dict[str, Any],
    secret: str,
    event_id: str = "",
    delay: timedelta = timedelta(0),
) -> Delivery:
    """Queue one delivery; it leaves only after the caller's transaction commits."""
    delivery = Delivery.objects.create(
        provider=provider,
        event_type=event_type,
        event_id=event_id,
        url=url,
        body=json.dumps(payload, indent=2),
        signing_secret=secret,
        next_attempt_at=timezone.now() + delay,
    )
    db.on_commit(wake)
    return delivery


def attempt(delivery: Delivery) -> DeliveryAttempt:
    """Post one delivery now and record the outcome."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENTS[delivery.provider],
        SIGNATURE_HEADERS[delivery.provider]: signature(
            delivery.signing_secret, delivery.body, timestamp
        ),
    }
    status_code, error, excerpt = None, "", ""
    started = time.monotonic()
    try:
        response = requests.post(
            delivery.url,
            data=delivery.body.encode(),
            headers=headers,
            timeout=TIMEOUT,
            allow_redirects=False,  # a redirect is a failed delivery, as for the real ones
        )
        status_code, excerpt = response.status_code, response.text[:300]
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    duration_ms = int((time.monotonic() - started) * 1000)

    delivery.attempts += 1
    record = DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        status_code=status_code,
        error=error,
        response_excerpt=excerpt,
        duration_ms=duration_ms,
    )
    if record.succeeded:
        delivery.status = Delivery.Status.DELIVERED
    elif delivery.attempts >= settings.SANDBOX_WEBHOOK_MAX_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
    else:
        delivery.next_attempt_at = timezone.now() + backoff(delivery.attempts)
    delivery.save(update_fields=["attempts", "status", "next_attempt_at"])
    logger.info(
        "sandbox.webhook.attempt",
        extra={
            "provider": delivery.provider,
            "event_type": delivery.event_type,
            "attempt": delivery.attempts,
            "status_code": status_code,
            "outcome": delivery.status,
        },
    )
    return record


def deliver_due(*, limit: int = 50) -> int:
    """Attempt every delivery whose time has come; returns how many were attempted.

    Safe to run from several threads or processes: a delivery is claimed by moving
    its next attempt forward, and only one claimer's update matches.
    """
    for tick in list(_tick_hooks):
        tick()
    now = timezone.now()
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", "next_attempt_at")[:limit]
    )
    attempted = 0
    for pk, scheduled in due:
        claimed = Delivery.objects.filter(
            pk=pk, status=Delivery.Status.PENDING, next_attempt_at=scheduled
        ).update(next_attempt_at=now + LEASE)
        if claimed:
            attempt(Delivery.objects.get(pk=pk))
            attempted += 1
    return attempted


# --- Periodic work and the dispatcher thread ------------------------------------------

_tick_hooks: list[Callable[[], None]] = []


def on_tick(hook: Callable[[], None]) -> Callable[[], None]:
    """Register work for every dispatcher pass (e.g. expiring overdue sessions)."""
    if hook not in _tick_hooks:
        _tick_hooks.append(hook)
    return hook


class _Dispatcher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="sandbox-webhooks", daemon=True)
        self.wakeup = threading.Event()

        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.wait(timeout=1.0)
            self.wakeup.clear()
            if self.stopping.is_set():
                break
            try:
                deliver_due()
            except Exception:  # keep delivering whatever one pass hit
                logger.exception("sandbox.webhook.dispatcher-failed")
            finally:
                # Idle most of the time: hold no connection between passes.
                db.close()


_dispatcher: _Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def wake() -> None:
    """Start the dispatcher if this process has none yet, and nudge it."""
    global _dispatcher  # noqa: PLW0603 (one dispatcher per process)
    if not settings.SANDBOX_DELIVERY_THREAD:
        return
    with _dispatcher_lock:
        if _dispatcher is None or not _dispatcher.is_alive():
            _dispatcher = _Dispatcher()
            _dispatcher.start()
    _dispatcher.wakeup.set()


def stop_dispatcher(timeout: float = 5.0) -> None:
    """Stop this process's dispatcher, if any (tests; a clean shutdown)."""
    global _dispatcher
    with _dispatcher_lock:
        running, _dispatcher = _dispatcher, None
    if running is not None:
        running.stopping.set()
        running.wakeup.set()
        running.join(timeout)
