"""Calls to Stripe and Calendly: each one logged and counted, never with its secret,
and never made inside a database transaction.

A provider client wraps every request in ``provider_call(...)``; the log line names
the provider, operation, HTTP status, duration and the key by its label (kind and
fingerprint, e.g. ``rk_live:3f2a9c1b7d20``), never the key or any personal data.

A provider can take tens of seconds to answer (Stripe's own timeouts), and a
transaction open meanwhile holds its connection and its row locks ("idle in
transaction") for every other worker and request that needs them. So a call made
with a transaction open is refused (``PROVIDER_CALLS_IN_TRANSACTION = "raise"``, the
test profile's setting, which makes any such path fail the suite) or logged as
``provider.call_in_transaction`` (``"warn"``, the default). Call the provider first,
then write; or write, commit, and call after (``transaction.on_commit``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

from core.encryption import key_fingerprint

logger = logging.getLogger("slotpay.outgoing")

_lock = threading.Lock()
CALLS: Counter[tuple[str, str, str]] = Counter()


def key_label(key: str, *, kind: str | None = None) -> str:
    """``sk_test:<fingerprint>``: which key, without the key."""
    if kind is None:
        parts = key.split("_")
        kind = "_".join(parts[:2]) if len(parts) > 2 else "token"
    return f"{kind}:{key_fingerprint(key)}"


@dataclass
class Call:
    status: int | None = None
    error: str = ""


def calls(provider: str, operation: str | None = None) -> int:
    """How many calls were made (for tests and metrics)."""
    with _lock:
        return sum(
            count
            for (p, op, _), count in CALLS.items()
            if p == provider and (operation is None or op == operation)
        )


class CallInTransactionError(RuntimeError):
    """A provider was about to be called with a database transaction open."""


def open_transactions() -> list[str]:
    """The aliases of the databases with a transaction open in this thread.

    A test case's own wrapping transaction is not counted: under it, the code runs
    as it does in production, in autocommit.
    """
    return [
        connection.alias
        for connection in connections.all(initialized_only=True)
        if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)
        or (connection.in_atomic_block and not connection.atomic_blocks)
    ]


def _refuse_in_transaction(provider: str, operation: str) -> None:
    open_ = open_transactions()
    if not open_:
        return
    mode = getattr(settings, "PROVIDER_CALLS_IN_TRANSACTION", "warn")
    where = {"provider": provider, "operation": operation, "databases": open_}
    if mode == "raise":
        raise CallInTransactionError(
            f"{provider} {operation} called inside a transaction on {', '.join(open_)}"
        )
    logger.warning("provider.call_in_transaction", extra=where, stack_info=True)


@contextmanager
def provider_call(provider: str, operation: str, *, key_label: str) -> Iterator[Call]:
    """Time one outgoing call; the caller sets ``call.status`` (or an error escapes).

    Refused, or logged, when a database transaction is open (see the module's doc).
    """
    _refuse_in_transaction(provider, operation)
    call = Call()
    started = time.monotonic()
    try:
        yield call
    except Exception as exc:
        call.error = type(exc).__name__
        raise
    finally:
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        outcome = str(call.status) if call.status is not None else (call.error or "error")
        with _lock:
            CALLS[(provider, operation, outcome)] += 1
        logger.info(
            "provider.call",
            extra={
                "provider": provider,
                "operation": operation,
                "status": call.status,
                "error": call.error,
                "duration_ms": duration_ms,
                "key": key_label,
            },
        )
