"""Request limits: counters in Django's cache, the pages' middleware, the API's throttles.

Every limit counts requests per *identity* (a client address, a signed-in user, an API
token, the blind index of an email typed into a form) in a sliding window: the count of
the current fixed window plus the previous window's, weighted by how much of it still
overlaps (Cloudflare's approximation; two counters per identity, no request log). Counts
are atomic (``cache.add`` then ``cache.incr``), so concurrent requests from several web
processes sharing the Redis cache never let more than the limit through.

A refused request is not counted: a client that waits as long as ``Retry-After`` says
gets in. Every refusal sends ``rate_limited`` (accounts.signals audits it, capped: they
come in floods). With the cache unreachable the limits let requests through and log it:
sign-in still has django-axes' lockouts, kept in the database.

The pages' limits are the table ``RATE_LIMITS`` in settings, keyed by URL name and
method (RateLimitMiddleware); the API's are DRF throttles (``DEFAULT_THROTTLE_RATES``).
``RATE_LIMITS_ENABLED`` is off only in the test profile, whose many sign-ins from one
address would trip them; the tests of the limits turn it on.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from core.encryption import blind_index
from core.http import client_ip
from core.rates import Rate, parse_rate

logger = logging.getLogger(__name__)

# Sent for every refused request, with ``request``, ``limit`` (the limit's name, such
# as "sign_in.address") and ``retry_after`` (seconds).
rate_limited = Signal()

# Limits counting answers rather than requests: API calls answered 401 (no or bad
# credentials), per address. Checked before the view, counted after it.
API_UNAUTHENTICATED = "api.unauthenticated"
# Longest text of a form field that is indexed (an email is at most 254 characters).
MAX_FIELD_LENGTH = 1000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until a request would be allowed; 0 if allowed


class Counter:
    """One identity's sliding-window counter for one limit.

    The identity never appears in the cache key in clear (only a hash of it), and an
    email is only ever given as its blind index.
    """

    def __init__(
        self, limit: str, identity: str, rate: Rate, *, cache: BaseCache | None = None
    ) -> None:
        self.limit = limit
        self.rate = rate
        self.cache = cache if cache is not None else caches[settings.RATE_LIMIT_CACHE]
        self._identity = hashlib.sha256(identity.encode()).hexdigest()[:32]
        self._counted_window: int | None = None

    def _key(self, window: int) -> str:
        return f"ratelimit:{self.limit}:{self._identity}:{self.rate.seconds}:{window}"

    def _window(self, now: float) -> tuple[int, float]:
        """The current window's number and how far into it ``now`` is (seconds)."""
        window = int(now // self.rate.seconds)
        return window, now - window * self.rate.seconds

    def _previous(self, window: int) -> int:
        return int(self.cache.get(self._key(window - 1)) or 0)

    def _increment(self, window: int) -> int:
        key = self._key(window)
        # Kept through the next window, where it is the previous one.
        timeout = 2 * self.rate.seconds + 1
        for _ in range(3):
            self.cache.add(key, 0, timeout)
            try:
                return int(self.cache.incr(key))
            except ValueError:  # expired between add and incr: add it again
                continue
        raise RuntimeError(f"rate-limit counter {self.limit} could not be incremented")

    def _over(self, previous: int, current: int, elapsed: float) -> bool:
        seconds = self.rate.seconds
        return previous * (seconds - elapsed) + current * seconds > self.rate.count * seconds

    def _retry_after(self, previous: int, current: int, elapsed: float) -> int:
        """Seconds until one more request fits, if no other arrives meanwhile.

        ``current`` counts this window's accepted requests. Within this window the
        previous window's weight fades; from the next one on, this window's does.
        """
        count, seconds = self.rate.count, self.rate.seconds
        wait: float
        if previous and current + 1 <= count:
            wait = seconds * (1 - (count - current - 1) / previous) - elapsed
            if wait < seconds - elapsed:
                return max(1, math.ceil(wait))
        wait = seconds - elapsed
        if current + 1 > count:
            wait += seconds * (1 - (count - 1) / current)
        return max(1, math.ceil(wait))

    def attempt(self, now: float | None = None) -> Decision:
        """Count one request if it fits in the limit; refuse it (uncounted) if not."""
        window, elapsed = self._window(time.time() if now is None else now)
        previous = self._previous(window)
        current = self._increment(window)
        if not self._over(previous, current, elapsed):
            self._counted_window = window
            return Decision(allowed=True)
        self.cache.decr(self._key(window))
        wait = self._retry_after(previous, current - 1, elapsed)
        return Decision(allowed=False, retry_after=wait)

    def check(self, now: float | None = None) -> Decision:
        """Whether one more request would fit, counting nothing."""
        window, elapsed = self._window(time.time() if now is None else now)
        previous = self._previous(window)
        current = int(self.cache.get(self._key(window)) or 0)
        if not self._over(previous, current + 1, elapsed):
            return Decision(allowed=True)
        return Decision(allowed=False, retry_after=self._retry_after(previous, current, elapsed))

    def count(self, now: float | None = None) -> None:
        """Count one event whatever the limit says (an answer already given)."""
        self._increment(self._window(time.time() if now is None else now)[0])

    def undo(self) -> None:
        """Take back the request ``attempt`` counted (another limit refused it)."""
        if self._counted_window is not None:
            # A counter that expired meanwhile has nothing left to take back.
            with contextlib.suppress(ValueError):
                self.cache.decr(self._key(self._counted_window))
            self._counted_window = None


# --- Identities -------------------------------------------------------------------------


def address_identity(request: HttpRequest) -> str:
    """The client's address; an IPv6 client by its /64, which one host usually holds."""
    address = client_ip(request)
    if address is None:
        return "address:unknown"
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


def user_identity(request: HttpRequest) -> str:
    """The signed-in user; a signed-out visitor by address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return address_identity(request)


def field_identity(request: HttpRequest, field: str) -> str | None:
    """The blind index of an email typed into the form's ``field``; None when empty."""
    value = request.POST.get(field, "")
    if not isinstance(value, str) or not value.strip():
        return None
    return f"email:{blind_index(value[:MAX_FIELD_LENGTH])}"


def session_identity(request: HttpRequest, path: str) -> str | None:
    """What the session holds at ``path``: a key, or keys into nested dicts joined by
    dots (``session_ended.user``: the account a signed-out session may recover)."""
    value: Any = getattr(request, "session", None)
    for key in path.split("."):
        value = value.get(key) if hasattr(value, "get") else None
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return f"session:{path}:{value}"


def identity(request: HttpRequest, key: str) -> str | None:
    """The identity a limit counts by: ``address``, ``user``, ``email:<form field>``,
    ``email_address:<form field>`` (that email typed from that address: a limit nobody
    else's requests can spend) or ``session:<session key>``. None: the request has none
    (the limit skips it)."""
    if key == "address":
        return address_identity(request)
    if key == "user":
        return user_identity(request)
    kind, _, name = key.partition(":")
    if kind == "email" and name:
        return field_identity(request, name)
    if kind == "email_address" and name:
        email = field_identity(request, name)
        return None if email is None else f"{email}|{address_identity(request)}"
    if kind == "session" and name:
        return session_identity(request, name)
    raise ValueError(f"unknown rate-limit key {key!r}")


# --- The pages' table -------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One row of ``RATE_LIMITS``: requests to ``views`` (URL names) by ``methods``,
    counted per ``key``, at most ``rate``."""

    name: str
    views: frozenset[str]
    methods: frozenset[str]
    key: str
    rate: Rate


def configured_limits() -> list[Limit]:
    """``RATE_LIMITS``, read at each use so that override_settings reaches it. A URL
    name that matches no view yet (an app not installed) simply never matches."""
    rows: dict[str, dict[str, Any]] = settings.RATE_LIMITS
    return [
        Limit(
            name=name,
            views=frozenset(row["views"]),
            methods=frozenset(method.upper() for method in row.get("methods", ("POST",))),
            key=str(row["key"]),
            rate=parse_rate(str(row["rate"])),
        )
        for name, row in rows.items()
    ]


def limits_for(view_name: str, method: str) -> Iterator[Limit]:
    for limit in configured_limits():
        if view_name in limit.views and method in limit.methods:
            yield limit


def _guarded(action: Callable[[], Decision | None]) -> Decision | None:
    """Run a counter's step; with the cache unreachable, let the request through (None)
    and say so in the log."""
    try:
        return action()
    except Exception:
        logger.warning("ratelimit.cache-unavailable", exc_info=True)
        return None


# --- Refusals ---------------------------------------------------------------------------


def wait_in_words(seconds: int) -> str:
    """``95`` -> "2 minutes": how long to wait, rounded up, for a person to read."""
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    hours, rest = divmod(minutes, 60)
    text = "1 hour" if hours == 1 else f"{hours} hours"
    return f"{text} {rest} minute{'s' if rest != 1 else ''}" if rest else text


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def refused(request: HttpRequest, *, limit: str, retry_after: int, sender: Any) -> HttpResponse:
    """The 429 of a page (ours, saying how long to wait) or of the API (its error
    shape), with ``Retry-After``; the refusal is logged and signalled for the audit."""
    logger.info("ratelimit.refused", extra={"limit": limit, "retry_after": retry_after})
    rate_limited.send(sender=sender, request=request, limit=limit, retry_after=retry_after)
    response: HttpResponse
    if is_api(request):
        message = str(Throttled(wait=retry_after).detail)
        response = JsonResponse({"error": {"code": "throttled", "message": message}}, status=429)
    else:
        response = render(
            request,
            "throttled.html",
            {
                "wait": wait_in_words(retry_after),
                "request_id": getattr(request, "request_id", None),
            },
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response


class RateLimitMiddleware:
    """Apply ``RATE_LIMITS`` to the pages, before the view runs (after authentication,
    so that per-user limits know the user; after the CSRF check).

    Also counts the API calls answered 401 per address, and refuses the address's calls
    once they reach the anonymous rate (``DEFAULT_THROTTLE_RATES["address"]``): DRF
    checks throttles only after authentication and permissions, so a caller guessing
    tokens, or sending none, would never meet one there."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not (settings.RATE_LIMITS_ENABLED and is_api(request)):
            return self.get_response(request)
        counter = Counter(
            API_UNAUTHENTICATED,
            address_identity(request),
            api_rate("address"),
        )
        decision = _guarded(counter.check)
        if decision is not None and not decision.allowed:
            return refused(
                request, limit=API_UNAUTHENTICATED, retry_after=decision.retry_after, sender=self
            )
        response = self.get_response(request)
        if response.status_code == 401:
            _guarded(counter.count)
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        match = request.resolver_match
        if not settings.RATE_LIMITS_ENABLED or match is None or request.method is None:
            return None
        counted: list[Counter] = []
        for limit in limits_for(match.view_name, request.method):
            who = identity(request, limit.key)
            if who is None:
                continue
            counter = Counter(limit.name, who, limit.rate)
            decision = _guarded(counter.attempt)
            if decision is not None and not decision.allowed:
                for earlier in counted:  # refused: counted against no limit
                    _guarded(earlier.undo)
                return refused(
                    request, limit=limit.name, retry_after=decision.retry_after, sender=self
                )
            counted.append(counter)
        return None


# --- The API's throttles (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]) --------------------


def api_rate(scope: str) -> Rate:
    """``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``, read at each use."""
    return parse_rate(str(api_settings.DEFAULT_THROTTLE_RATES[scope]))


class _ApiThrottle(BaseThrottle):
    """A DRF throttle on our counters: ``scope`` names its rate in
    ``DEFAULT_THROTTLE_RATES``; ``identify`` says whom it counts (None: not this one)."""

    scope = ""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def identify(self, request: Request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        if not settings.RATE_LIMITS_ENABLED:
            return True
        who = self.identify(request)
        if who is None:
            return True
        limit = f"api.{self.scope}"
        rate = api_rate(self.scope)
        decision = _guarded(Counter(limit, who, rate).attempt)
        if decision is None or decision.allowed:
            return True
        self.retry_after = decision.retry_after
        logger.info("ratelimit.refused", extra={"limit": limit, "retry_after": self.retry_after})
        rate_limited.send(
            sender=type(self), request=request, limit=limit, retry_after=self.retry_after
        )
        return False

    def wait(self) -> int | None:
        return self.retry_after


class ApiUserThrottle(_ApiThrottle):
    """Every API call of a signed-in user, by session or by any of their tokens."""

    scope = "user"

    def identify(self, request: Request) -> str | None:
        user = request.user
        return f"user:{user.pk}" if user is not None and user.is_authenticated else None


class ApiTokenThrottle(_ApiThrottle):
    """The calls made with one API token (``request.auth``, an accounts ApiToken)."""

    scope = "token"

    def identify(self, request: Request) -> str | None:
        token_pk = getattr(request.auth, "pk", None)
        return f"token:{token_pk}" if token_pk is not None else None


class ApiAddressThrottle(_ApiThrottle):
    """Anonymous calls (the endpoints open to them), per address."""

    scope = "address"

    def identify(self, request: Request) -> str | None:
        user = request.user
        if user is not None and user.is_authenticated:
            return None
        return address_identity(request._request)
