"""Shared fixtures: the cast of users, service markers, encryption keys.

Tests marked ``postgres`` or ``redis`` need the real server (DATABASE_URL pointing
at PostgreSQL, REDIS_URL at Redis). Without one they are skipped, except when
SLOTPAY_REQUIRE_SERVICES=1 (CI), where a missing service fails them instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings

from accounts import encryption
from accounts.models import Builder, BuilderMembership, User

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret


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
    return None


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
def stranger(db: None) -> User:
    """Someone with no relation to the owner's builder."""
    return User.objects.create_user(email="stranger@example.net", password=PASSWORD, name="Sam")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_superuser(email="staff@slotpay.example", password=PASSWORD)


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


class WebhookReceiver:
    """A real HTTP endpoint on 127.0.0.1 that records what is posted to it and
    answers with the status codes queued in ``answers`` (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "https://elsewhere.invalid/")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
