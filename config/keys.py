"""The keys Slotpay holds, described without their values: fingerprint, version, age.

One inventory for the system checks (config/checks.py) and ``manage.py keys_status``.
The rotation watchdog (``keys.rotation`` in core/alerts.py) computes the same due dates
from the same settings; core sits below config, so it cannot import this module.

- A key is named by the fingerprint logs and audit entries use for it
  (``core.encryption.key_fingerprint``: the first 12 hex digits of its SHA-256), never
  by the key or any part of it.
- Its **version** is ``<NAME>_VERSION``, a number the operator raises at each rotation
  (optional; shown as ``v3``). Keys given as lists (``FIELD_ENCRYPTION_KEY``,
  ``BLIND_INDEX_KEY``, the webhook secrets) also show the older entries still accepted,
  by fingerprint: the first entry is the current key.
- Its **age** counts from ``<NAME>_CREATED`` (ISO date); it is due for rotation
  ``KEY_ROTATION_DAYS`` after that date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from django.conf import settings

from core.encryption import blind_index_keys, key_fingerprint

StripeMode = Literal["live", "test"]

# What Slotpay's own development and test profiles generate (config/env.py,
# config/settings.py): Stripe's real secrets do not show their mode, ours do, so one of
# these in production is a development .env copied over.
SANDBOX_WEBHOOK_SECRET_PREFIXES = ("whsec_test", "whsec_sandbox")


def stripe_mode(key: str) -> StripeMode | None:
    """``live`` or ``test`` for a Stripe secret (``sk_``) or restricted (``rk_``) key;
    None for anything else (a publishable ``pk_`` key, a typo)."""
    for kind in ("sk_", "rk_"):
        for mode in ("live", "test"):
            if key.startswith(f"{kind}{mode}_"):
                return mode
    return None


def is_unrestricted_stripe_key(key: str) -> bool:
    return key.startswith("sk_")


def is_sandbox_webhook_secret(secret: str) -> bool:
    return secret.startswith(SANDBOX_WEBHOOK_SECRET_PREFIXES)


def days(count: int) -> str:
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def values(name: str) -> list[str]:
    """The configured entries of key ``name``, the current one first."""
    if name == "BLIND_INDEX_KEY":
        return [key for key in blind_index_keys() if key]
    value = getattr(settings, name, None)
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if item]
    return [str(value)] if value else []


def version_label(name: str) -> str | None:
    """``v3`` from ``<NAME>_VERSION=3``; None when unset. Malformed is a ValueError."""
    raw = (getattr(settings, "KEY_VERSION", {}) or {}).get(name) or ""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"{name}_VERSION={raw!r} is not a positive whole number.")
    return f"v{int(raw)}"


@dataclass(frozen=True)
class KeyStatus:
    name: str
    fingerprint: str | None  # of the current key; None when none is configured
    older: tuple[str, ...]  # fingerprints of older entries still accepted
    version: str | None
    created: date | None

    @property
    def due(self) -> date | None:
        if self.created is None:
            return None
        return self.created + timedelta(days=settings.KEY_ROTATION_DAYS)

    def age_days(self, today: date) -> int | None:
        return None if self.created is None else (today - self.created).days

    def days_left(self, today: date) -> int | None:
        """Days until the rotation is due: negative once overdue."""
        return None if self.due is None else (self.due - today).days

    def label(self) -> str:
        """``STRIPE_API_KEY 3f2a9c1b7d20 v3``: how checks and commands name it."""
        parts = [self.name, self.fingerprint or "(not set)"]
        if self.version:
            parts.append(self.version)
        return " ".join(parts)


def key_status(name: str) -> KeyStatus:
    entries = values(name)
    try:
        version = version_label(name)
    except ValueError:
        version = None  # check_key_versions reports it
    return KeyStatus(
        name=name,
        fingerprint=key_fingerprint(entries[0]) if entries else None,
        older=tuple(key_fingerprint(entry) for entry in entries[1:]),
        version=version,
        created=settings.KEY_CREATED.get(name),
    )


def inventory() -> list[KeyStatus]:
    """Every key of ``ROTATED_KEYS``, in that order."""
    return [key_status(name) for name in settings.ROTATED_KEYS]
