"""Shared fixtures: the cast of users, service markers, encryption keys.

Tests marked ``postgres`` or ``redis`` need the real server (DATABASE_URL pointing
at PostgreSQL, REDIS_URL at Redis), and ``browser`` ones Debian's Chromium. Without
one they are skipped, except when SLOTPAY_REQUIRE_SERVICES=1 (CI), where a missing
service fails them instead.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.models import Builder, BuilderMembership, User
from config.celery import app as celery_app
from core import encryption
from payments import stripe_gateway
from sandbox import delivery
from sandbox.calendly_sandbox.resources import Urls
from sandbox.models import Delivery

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret


def step_up(client: Any, password: str = PASSWORD, otp_token: str | None = None) -> Any:
    """Confirm it is you on the step-up page (accounts.stepup), as staff do before a
    money, rights, erasure or replay action. Returns the page's answer."""
    data = {"password": password, "next": "/admin/"}
    if otp_token is not None:
        data["otp_token"] = otp_token
    answer = client.post("/accounts/step-up/", data)
    assert (answer.status_code, answer.get("Location")) == (302, "/admin/"), answer
    return answer


def _missing_service(item: pytest.Item) -> str | None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return "needs PostgreSQL (DATABASE_URL=postgres://...)"
    if item.get_closest_marker("redis"):
        if not settings.REDIS_URL:
            return "needs Redis (REDIS_URL=redis://...)"
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
        except redis.RedisError as exc:
            return f"needs Redis, which is unreachable at REDIS_URL ({exc})"
    if item.get_closest_marker("browser"):
        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        if not os.access(chromium, os.X_OK):
            return f"needs Chromium at {chromium} (apt-get install -y chromium)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``connections`` (each opens many database connections at once) run
    on one xdist worker, one after the other (``--dist loadgroup``): two of them side by
    side could pass PostgreSQL's connection limit."""
    for item in items:
        if item.get_closest_marker("connections"):
            item.add_marker(pytest.mark.xdist_group("connections"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A test's ``record_property("summary", text)`` (the chaos run's counts), printed
    at the end of the run whether it passed or failed; it crosses from xdist's workers
    in their reports."""
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            for name, value in getattr(report, "user_properties", []):
                if name == "summary" and report.when == "call":
                    terminalreporter.write_sep("-", f"{report.nodeid} ({status})")
                    terminalreporter.write_line(str(value))


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = _missing_service(item)
    if missing is None:
        return
    if os.environ.get("SLOTPAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{missing}: services are required in this run", pytrace=False)
    pytest.skip(missing)


@pytest.fixture
def owner(db: None) -> User:
    """A builder's owner: the person whose data most tests are about."""
    user = User.objects.create_user(
        email="Owner@Example.com", password=PASSWORD, name="Olive Owner"
    )
    builder = Builder.objects.create(name="Olive's Studio", slug="olives-studio")
    BuilderMembership.objects.create(builder=builder, user=user, role="owner")
    return user


@pytest.fixture
def clerk(db: None) -> User:
    """A staff account of no builder, in no group: what signs in to the back-office.
    A builder's member cannot be made staff (accounts.rights)."""
    return User.objects.create_user(
        email="Clerk@Example.com", password=PASSWORD, name="Carla Clerk", is_staff=True
    )


@pytest.fixture
def stranger(db: None) -> User:
    """Someone with no relation to the owner's builder."""
    return User.objects.create_user(email="stranger@example.net", password=PASSWORD, name="Sam")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_superuser(email="staff@slotpay.example", password=PASSWORD)


def _forget_broker_connections() -> None:
    # The Celery app caches its broker pool from the configuration it first saw.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app._local = threading.local()


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Publishing goes to a Redis port nobody listens on (and fails fast, as the
    transport options ask). Setting ``task_always_eager`` back to True inside the test
    is "the broker is back" (tasks then run in-process)."""
    overrides = {"broker_url": "redis://127.0.0.1:1/0", "task_always_eager": False}
    saved = {name: celery_app.conf[name] for name in overrides}
    celery_app.conf.update(overrides)
    _forget_broker_connections()
    try:
        yield
    finally:
        celery_app.conf.update(saved)
        _forget_broker_connections()


@pytest.fixture
def field_keys() -> Iterator[callable]:
    """Switch FIELD_ENCRYPTION_KEY for the rest of the test (the library reads the
    keys once, so its cipher is rebuilt), restoring the original afterwards."""
    overrides = []

    def use(*keys: str) -> None:
        override = override_settings(FIELD_ENCRYPTION_KEY=list(keys))
        override.enable()
        overrides.append(override)
        encryption.reload_keys()

    yield use
    for override in reversed(overrides):
        override.disable()
    encryption.reload_keys()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer:
    """A real HTTP server on 127.0.0.1, in a thread of the test, serving ``handler``
    (what the providers' stand-ins in a test need: an endpoint, a failing API, a
    proxy). ``close()`` stops it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class WebhookReceiver(LocalServer):
    """A real HTTP endpoint on 127.0.0.1 that records what is posted to it and
    answers with the status codes queued in ``answers`` (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.answers: list[int] = []
        self.got_one = threading.Event()  # set on the first delivery: wait on it, never sleep
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.got_one.set()
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "https://elsewhere.invalid/")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        super().__init__(Handler, path="/hooks")


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# --- The site and both sandboxes over real HTTP ---------------------------------------------


class Site:
    """Where the live server answers, and what the sandbox delivered to it."""

    def __init__(self, url: str, settings: Any) -> None:
        self.url = url
        self.settings = settings

    def endpoint(self, provider: str) -> str:
        token = (
            self.settings.STRIPE_WEBHOOK_PATH_TOKEN
            if provider == "stripe"
            else self.settings.CALENDLY_WEBHOOK_PATH_TOKEN
        )
        return f"{self.url}/webhooks/{provider}/{token}/"

    @property
    def urls(self) -> Urls:
        """The sandbox's URIs, as its pages served by the live server make them."""
        return Urls(site=self.url)

    def deliver(self) -> list[Delivery]:
        """Post everything pending now (retries included); the deliveries, oldest first."""
        Delivery.objects.filter(status=Delivery.Status.PENDING).update(
            next_attempt_at=timezone.now()
        )
        delivery.deliver_due()
        return list(Delivery.objects.prefetch_related("attempt_log").order_by("id"))


@pytest.fixture
def site(live_server: Any, settings: Any) -> Iterator[Site]:
    """Everything pointed at the live server, as SITE_URL's defaults do in development."""
    settings.SITE_URL = live_server.url
    settings.STRIPE_API_BASE = f"{live_server.url}/sandbox/stripe"
    settings.CALENDLY_API_BASE = f"{live_server.url}/sandbox/calendly/api"
    settings.SANDBOX_STRIPE_WEBHOOK_URL = (
        f"{live_server.url}/webhooks/stripe/{settings.STRIPE_WEBHOOK_PATH_TOKEN}/"
    )
    yield Site(live_server.url, settings)
    # No kept-alive connection (and its server thread's database connection) outlives
    # the test.
    stripe_gateway.close_clients()
    gc.collect()
