"""Production smoke: the deploy/ configuration serving, on PostgreSQL and Redis.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python .ci/smoke.py

With ``ENVIRONMENT=production`` and freshly generated secrets given as ``NAME_FILE``
(as systemd credentials give them), on a database of its own (``<name>_smoke``,
dropped and created): ``migrate``, ``collectstatic``, then gunicorn with
deploy/gunicorn.conf.py, a Celery worker and beat. Requests arrive as from the
reverse proxy of deploy/nginx.conf (Host, X-Forwarded-For, X-Forwarded-Proto). It
checks that:

1. ``/readyz`` is 200 and carries HSTS; the same request without the proxy's
   X-Forwarded-Proto is redirected to HTTPS;
2. a static file is served under its hashed name (WhiteNoise's manifest), cached
   for good;
3. a signed Stripe ``checkout.session.completed`` for a booking awaiting payment is
   accepted (200, HSTS) from an allowed address read through X-Forwarded-For, goes
   through the inbox to the worker, which reads the session from "Stripe" (a local
   stand-in: production has no sandbox, and this machine no Stripe) and ends
   ``processed``, the booking ``confirmed``; the same delivery from an address
   outside the allowlist is refused;
4. beat schedules and the worker runs a periodic task (the outbox relay, every 10 s).

Every process is stopped on the way out, whatever happened. Exit 0 when all pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import requests  # noqa: TID251 (a client of our server, as a browser or Stripe is)
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "slotpay.example"
# The client address the proxy appends (TEST-NET-1), and a network that allows it.
CLIENT_IP = "192.0.2.10"
STRIPE_NETWORK = "192.0.2.0/24"
STARTED = time.monotonic()
QUERY_MARKER = "smoke-query@client.example"
# config/settings.py's ROTATED_KEYS: the keys dated for the 90-day rotation.
ROTATED_KEYS = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "BLIND_INDEX_KEY",
    "AUDIT_CHECKPOINT_KEY",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRETS",
    "CALENDLY_API_TOKEN",
    "CALENDLY_WEBHOOK_SIGNING_KEYS",
)


class SmokeError(Exception):
    pass


def say(text: str) -> None:
    sys.stdout.write(f"[smoke {time.monotonic() - STARTED:5.1f}s] {text}\n")
    sys.stdout.flush()


def check(condition: object, message: str) -> None:
    if not condition:
        raise SmokeError(message)
    say(f"ok: {message}")


def wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SmokeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Configuration -------------------------------------------------------------------


def production_env(scratch: Path, database_url: str, redis_url: str, stripe_base: str) -> dict:
    """The environment of every process: secrets as files, as systemd credentials."""
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        "AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(32),
        # Production's shapes: a restricted live-mode key; fakes, never valid at Stripe.
        "STRIPE_API_KEY": "rk_" + "live_FAKE" + secrets.token_hex(12),  # pragma: allowlist secret
        "STRIPE_WEBHOOK_SECRETS": "whsec_FAKE" + secrets.token_hex(16),  # pragma: allowlist secret
        "STRIPE_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_API_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_WEBHOOK_SIGNING_KEYS": secrets.token_urlsafe(32),
        "CALENDLY_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }
    credentials = scratch / "credentials"
    credentials.mkdir(mode=0o700)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_FILE") and key not in values
    }
    for name, value in values.items():
        path = credentials / name.lower()
        path.write_text(value + "\n", encoding="utf-8")
        env[f"{name}_FILE"] = str(path)
    env.update(
        {
            # The settings of deploy/slotpay.env, for this host name.
            "ENVIRONMENT": "production",
            "SITE_URL": f"https://{HOST}",
            "ALLOWED_HOSTS": HOST,
            "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
            "TRUSTED_PROXY_COUNT": "1",
            "ALERT_EMAILS": "ops@slotpay.example",
            "STRIPE_WEBHOOK_IP_ALLOWLIST": STRIPE_NETWORK,
            "STRIPE_API_BASE": stripe_base,
            "EMAIL_URL": "dummymail://",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Every key made just now (deploy/slotpay.env's <NAME>_CREATED, config/keys.py).
    today = time.strftime("%Y-%m-%d", time.gmtime())
    env.update({f"{name}_CREATED": today for name in ROTATED_KEYS})
    env.pop("SANDBOX", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def read_secret(env: dict, name: str) -> str:
    return Path(env[f"{name}_FILE"]).read_text(encoding="utf-8").strip()


def fresh_database(database_url: str) -> str:
    """``<name>_smoke`` beside the given database, dropped and created anew."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/") + "_smoke"
    with psycopg.connect(
        parts._replace(path="/postgres").geturl(), autocommit=True, connect_timeout=5
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl()


# --- A stand-in for Stripe's API ------------------------------------------------------


class FakeStripe(http.server.ThreadingHTTPServer):
    """Answers ``GET /v1/checkout/sessions/<id>`` for the sessions it is given, as
    Stripe does once Checkout is paid; anything else is Stripe's 404."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StripeHandler)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StripeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeStripe

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.requests.append(f"GET {path}")
        session = self.server.sessions.get(path.removeprefix("/v1/checkout/sessions/"))
        if path.startswith("/v1/checkout/sessions/") and session is not None:
            self._answer(200, session)
        else:
            error = {"type": "invalid_request_error", "message": "No such object"}
            self._answer(404, {"error": error})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- Processes -----------------------------------------------------------------------


class Processes:
    """Subprocesses, each the leader of its own group, stopped in reverse order."""

    def __init__(self, scratch: Path, env: dict) -> None:
        self.scratch = scratch
        self.env = env
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def run(self, name: str, *args: str, timeout: float = 300) -> str:
        log = self.scratch / f"{name}.log"
        with log.open("wb") as out:
            result = subprocess.run(  # noqa: S603 (our own commands)
                [str(BIN / "python"), "manage.py", *args],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode:
            raise SmokeError(f"manage.py {' '.join(args)} exited {result.returncode}:\n{tail(log)}")
        return log.read_text(encoding="utf-8", errors="replace")

    def start(self, name: str, *command: str, env: dict | None = None) -> None:
        log = self.scratch / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 (our own commands)
                [str(BIN / command[0]), *command[1:]],
                cwd=REPO,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((name, process, log))

    def log(self, name: str) -> str:
        return (self.scratch / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def alive(self) -> None:
        for name, process, log in self.running:
            if process.poll() is not None:
                raise SmokeError(f"{name} exited {process.returncode}:\n{tail(log)}")

    def stop(self) -> None:
        for _name, process, _log in reversed(self.running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process, _log in reversed(self.running):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.running.clear()

    def tails(self) -> str:
        return "\n".join(f"--- {name}\n{tail(log)}" for name, _process, log in self.running)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    server = FakeStripe()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- The checks ------------------------------------------------------------------------

SEED = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import Builder, User
from bookings.models import Booking, EventType
from payments.models import Payment

client = User.objects.create_user(email="smoke-client@slotpay.example", password=None)
builder = Builder.objects.create(name="Smoke Studio", slug="smoke-studio")
event_type = EventType.objects.create(
    builder=builder,
    calendly_event_type_uri="https://api.calendly.com/event_types/SMOKE",
    scheduling_url="https://calendly.com/smoke-studio/consult",
    title="Consultation", duration_minutes=60, price_amount=8000, currency="eur",
)
start = timezone.now() + timedelta(days=5)
booking = Booking.objects.create(
    client=client, builder=builder, event_type=event_type,
    calendly_invitee_uri="https://api.calendly.com/scheduled_events/SMOKE/invitees/SMOKE",
    calendly_event_uri="https://api.calendly.com/scheduled_events/SMOKE",
    start_at=start, end_at=start + timedelta(minutes=60),
    invitee_name="Smoke Client", invitee_email="smoke-client@slotpay.example",
    price_amount=8000, currency="eur",
)
Payment.objects.create(
    booking=booking, checkout_session_id="SESSION_ID", amount=8000, currency="eur",
)
print(f"SMOKE booking={booking.pk} reference={booking.reference} status={booking.status}")
"""


def get(base: str, path: str, *, proxied: bool = True) -> requests.Response:
    headers = {"Host": HOST}
    if proxied:
        headers |= {"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT_IP}
    return requests.get(base + path, headers=headers, timeout=10, allow_redirects=False)


def check_ready(base: str) -> None:
    answer = get(base, "/readyz")
    check(answer.status_code == 200, f"/readyz is 200 ({answer.status_code}: {answer.text[:200]})")
    hsts = answer.headers.get("Strict-Transport-Security", "")
    check("max-age=31536000" in hsts, f"/readyz carries HSTS ({hsts!r})")
    # As Calendly's redirect does: personal data in the query, never in a log.
    get(base, f"/readyz?invitee_email={QUERY_MARKER}")
    plain = get(base, "/readyz", proxied=False)
    check(
        plain.status_code == 301 and plain.headers.get("Location", "").startswith("https://"),
        f"without the proxy's X-Forwarded-Proto: redirected to HTTPS ({plain.status_code})",
    )


def check_access_log(processes: Processes) -> None:
    log = processes.log("gunicorn")
    check(
        "GET /readyz HTTP/1.1" in log and QUERY_MARKER not in log,
        "gunicorn's access log names the path without its query string",
    )


def check_static(base: str) -> None:
    manifest = json.loads((REPO / "staticfiles" / "staticfiles.json").read_text())["paths"]
    name = next(
        (n for n in ("css/site.css", "admin/css/base.css") if n in manifest), sorted(manifest)[0]
    )
    hashed = manifest[name]
    check(re.search(r"\.[0-9a-f]{12}\.", hashed), f"collectstatic hashed {name} as {hashed}")
    answer = get(base, f"/static/{hashed}")
    check(answer.status_code == 200 and answer.content, f"/static/{hashed} is served (200)")
    cache = answer.headers.get("Cache-Control", "")
    check("immutable" in cache, f"the hashed file is cached for good ({cache!r})")


def signed_delivery(env: dict, session_id: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "id": f"evt_smoke{secrets.token_hex(8)}",
        "object": "event",
        "type": "checkout.session.completed",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": True,
        "pending_webhooks": 1,
        "data": {"object": {"id": session_id, "object": "checkout.session"}},
    }
    body = json.dumps(event).encode()
    timestamp = int(time.time())
    secret = read_secret(env, "STRIPE_WEBHOOK_SECRETS")
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    headers = {
        "Host": HOST,
        "X-Forwarded-Proto": "https",
        "Content-Type": "application/json",
        "Stripe-Signature": f"t={timestamp},v1={signature.hexdigest()}",
    }
    return body, headers


def check_webhook(base: str, env: dict, stripe: FakeStripe, processes: Processes) -> None:
    session_id = f"cs_live_smoke{secrets.token_hex(12)}"
    output = processes.run("seed", "shell", "-c", SEED.replace("SESSION_ID", session_id))
    found = re.search(r"SMOKE booking=(\d+) reference=(\S+) status=(\S+)", output)
    check(found, f"a booking awaiting payment is seeded ({found and found.group(3)})")
    booking_id, reference, _ = found.groups()  # type: ignore[union-attr]
    stripe.sessions[session_id] = {
        "id": session_id,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 8000,
        "currency": "eur",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "payment_intent": None,
        "customer": None,
        "expires_at": int(time.time()) + 3600,
        "livemode": True,
        "metadata": {"booking": reference},
        "url": None,
    }
    path = f"/webhooks/stripe/{read_secret(env, 'STRIPE_WEBHOOK_PATH_TOKEN')}/"
    body, headers = signed_delivery(env, session_id)
    outside = requests.post(
        base + path, data=body, headers=headers | {"X-Forwarded-For": "198.51.100.7"}, timeout=10
    )
    check(
        outside.status_code == 400, f"from outside the allowlist: refused ({outside.status_code})"
    )
    answer = requests.post(
        base + path, data=body, headers=headers | {"X-Forwarded-For": CLIENT_IP}, timeout=10
    )
    check(answer.status_code == 200, f"the signed delivery is accepted ({answer.status_code})")
    hsts = answer.headers.get("Strict-Transport-Security", "")
    check("max-age=31536000" in hsts, f"the webhook's answer carries HSTS ({hsts!r})")
    event_id = json.loads(body)["id"]

    def status() -> str | None:
        processes.alive()
        with psycopg.connect(read_secret(env, "DATABASE_URL"), autocommit=True) as conn:
            row = conn.execute(
                "SELECT status, last_error FROM webhooks_webhookevent "
                "WHERE provider = 'stripe' AND event_id = %s",
                [event_id],
            ).fetchone()
        if row and row[0] in ("ignored", "dead", "failed"):
            raise SmokeError(f"the event ended {row[0]}: {row[1]}")
        return row[0] if row and row[0] == "processed" else None

    check(wait_for("the event processed", status, 60), "the event is processed by the worker")
    check(
        f"GET /v1/checkout/sessions/{session_id}" in stripe.requests,
        "the worker read the session from Stripe('s stand-in)",
    )
    with psycopg.connect(read_secret(env, "DATABASE_URL"), autocommit=True) as conn:
        booking, payment = conn.execute(
            "SELECT b.status, p.status FROM bookings_booking b "
            "JOIN payments_payment p ON p.booking_id = b.id WHERE b.id = %s",
            [int(booking_id)],
        ).fetchone()
    check(
        (booking, payment) == ("confirmed", "paid"),
        f"booking {booking}, payment {payment} (confirmed, paid)",
    )


def check_beat(processes: Processes) -> None:
    def relayed() -> bool:
        processes.alive()
        return bool(
            re.search(r"core\.tasks\.relay_outbox\[[^\]]+\] succeeded", processes.log("worker"))
        )

    wait_for("beat's outbox relay run by the worker", relayed, 45)
    check(True, "beat scheduled the outbox relay and the worker ran it")


def main() -> int:
    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    with (
        tempfile.TemporaryDirectory(prefix="slotpay-smoke-") as scratch_name,
        fake_stripe() as stripe,
    ):
        scratch = Path(scratch_name)
        env = production_env(scratch, fresh_database(database_url), redis_url, stripe.base)
        processes = Processes(scratch, env)
        try:
            processes.run("migrate", "migrate", "--noinput")
            say("migrated")
            processes.run("collectstatic", "collectstatic", "--noinput", "--clear")
            say("collected static files")
            port = free_port()
            processes.start(
                "gunicorn",
                "gunicorn",
                "--config",
                "deploy/gunicorn.conf.py",
                "config.wsgi",
                env={"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"},
            )
            processes.start(
                "worker",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                "slotpay",
                "--concurrency",
                "2",
                "--hostname",
                f"smoke-{uuid.uuid4().hex[:8]}@%h",
            )
            processes.start(
                "beat",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(scratch / "celerybeat-schedule"),
            )
            base = f"http://127.0.0.1:{port}"

            def serving() -> bool:
                processes.alive()
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            wait_for("gunicorn listening", serving, 30)
            wait_for("the worker ready", lambda: "ready." in processes.log("worker"), 60)
            say("gunicorn, the worker and beat are running")
            check_ready(base)
            check_static(base)
            check_webhook(base, env, stripe, processes)
            check_beat(processes)
            check_access_log(processes)
        except (SmokeError, requests.RequestException, TimeoutError) as exc:
            say(f"FAILED: {exc}")
            sys.stdout.write(processes.tails() + "\n")
            return 1
        finally:
            processes.stop()
    say("production smoke passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
