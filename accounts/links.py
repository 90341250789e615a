"""Links emailed to a person that work once, for one purpose, until they expire.

``issue`` returns the secret to put in the link (it is stored only as a SHA-256
digest: 256 random bits need no slow hash); ``spend`` takes it back, once. Spending is
one conditional UPDATE, so two clicks at once cannot both succeed. ``peek`` finds a
live link without spending it, for a page that shows a form before acting on it.

Every kind of link uses this: email verification, password reset, session recovery and
the claim of a booking made straight on Calendly.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import OneTimeLink, User
from core.encryption import blind_index

# A secret in a link is URL-safe base64 of this many bytes (43 characters).
SECRET_BYTES = 32
# Longer input is not a link of ours: refused before it is hashed.
MAX_SECRET_LENGTH = 64

Purpose = OneTimeLink.Purpose


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _well_formed(secret: Any) -> bool:
    return (
        isinstance(secret, str)
        and 0 < len(secret) <= MAX_SECRET_LENGTH
        and secret.isascii()
        and secret.replace("-", "").replace("_", "").isalnum()
    )


def issue(
    purpose: str,
    *,
    max_age: timedelta,
    user: User | None = None,
    email: str = "",
    target: str = "",
    replace: bool = True,
) -> str:
    """A new link's secret. With ``replace`` (the default), the same person's earlier
    unspent links for this purpose stop working: only the newest email counts."""
    if user is None and not email:
        raise ValueError("a link is for a user or an email address")
    now = timezone.now()
    email_index = blind_index(email) if email else ""
    if replace:
        earlier = OneTimeLink.objects.filter(purpose=purpose, used_at__isnull=True)
        earlier = (
            earlier.filter(user=user)
            if user is not None
            else earlier.filter(email_index=email_index, user__isnull=True)
        )
        if target and purpose == Purpose.CLAIM_BOOKING:
            earlier = earlier.filter(target=target)
        earlier.update(expires_at=now)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    OneTimeLink.objects.create(
        purpose=purpose,
        digest=_digest(secret),
        user=user,
        email_index=email_index,
        target=target,
        created_at=now,
        expires_at=now + max_age,
    )
    return secret


def peek(secret: Any, purpose: str) -> OneTimeLink | None:
    """The live (unspent, unexpired) link with this secret, or None; nothing changes."""
    if not _well_formed(secret):
        return None
    return (
        OneTimeLink.objects.select_related("user")
        .filter(
            digest=_digest(secret),
            purpose=purpose,
            used_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def spend(secret: Any, purpose: str) -> OneTimeLink | None:
    """The link, marked used, if it was live; None if it never existed, expired or was
    already used (the caller says the same thing for all three)."""
    link = peek(secret, purpose)
    if link is None:
        return None
    now = timezone.now()
    won = OneTimeLink.objects.filter(pk=link.pk, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if not won:
        return None
    link.used_at = now
    return link


def revoke(*, user: User, purpose: str) -> int:
    """End every unspent link of this purpose for the user (e.g. after a password change)."""
    return OneTimeLink.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(
        expires_at=timezone.now()
    )
