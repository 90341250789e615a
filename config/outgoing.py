"""Calls to Stripe and Calendly: each one logged and counted, never with its secret.

A provider client wraps every request in ``provider_call(...)``; the log line names
the provider, operation, HTTP status, duration and the key by its label (kind and
fingerprint, e.g. ``rk_live:3f2a9c1b7d20``), never the key or any personal data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


@contextmanager
def provider_call(provider: str, operation: str, *, key_label: str) -> Iterator[Call]:
    """Time one outgoing call; the caller sets ``call.status`` (or an error escapes)."""
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
