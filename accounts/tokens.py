"""Personal API tokens: made on the account's tokens page, shown once, stored as a keyed hash.

A token reads ``slp_<id>_<secret>``: ``slp_<id>`` is its prefix, kept in clear so that
its owner can tell tokens apart (and find the one a log line or a leak names); the
secret is 32 random bytes in base62. Only ``digest``, an HMAC-SHA256 of the whole token
keyed by ``SECRET_KEY``, is stored: a copy of the database alone cannot be used to call
the API, and 256 random bits need no slow hash.

Rotating ``SECRET_KEY``: put the old key in ``SECRET_KEY_FALLBACKS``. Tokens keep
working (they are checked under every key), and each one used while the old key is a
fallback is re-keyed to the new one. Removing the fallback (or rotating without one)
stops every token not used meanwhile: their owners make new ones.

Only an account whose email address is verified makes or uses tokens: a sign-up with
someone else's address must not mint a way in that outlives the owner's password reset.
A password reset, a password change and "sign out everywhere" revoke every token of the
account (``api_tokens_revoke_all``): the password is what minted each of them.

Every refusal of a token whose secret matched (expired, revoked, account closed or not
verified) and of an unknown one is audited, capped per hour
(``audit.services.record_capped``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

import audit
from accounts import validators
from accounts.models import ApiToken, User
from audit.services import record_capped

# The HMAC's salt: changing it stops every token.
KEY_SALT = "slotpay.api_token"
SCHEME = "slp"
ID_LENGTH = 8
SECRET_BYTES = 32
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 62**43 > 2**256: 32 random bytes in base62, zero-padded to a fixed width.
SECRET_LENGTH = 43
TOKEN_LENGTH = len(SCHEME) + 1 + ID_LENGTH + 1 + SECRET_LENGTH
_TOKEN = re.compile(
    rf"(?P<prefix>{SCHEME}_[0-9A-Za-z]{{{ID_LENGTH}}})_[0-9A-Za-z]{{{SECRET_LENGTH}}}",
    re.ASCII,
)
# last_used_at and last_used_ip are written at most this often per token.
TOUCH_INTERVAL = timedelta(minutes=1)
# More live tokens than this is a leak waiting to happen, not a need.
MAX_LIVE_TOKENS_PER_USER = 20
MAX_NAME_LENGTH = 100

Scope = ApiToken.Scope
RefusalReason = Literal["malformed", "unknown", "expired", "revoked", "inactive", "unverified"]
# What the tokens page and the API say to an account whose address is not verified.
VERIFY_FIRST = (
    "Please verify your email address first: follow the link we emailed you. "
    "Until then, API tokens cannot be made or used."
)


class TokenRefused(Exception):  # noqa: N818 (the outcome the API answers)
    """The token cannot be used; ``reason`` says why (one of ``RefusalReason``)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenInvalid(ValueError):  # noqa: N818 (the outcome the page shows)
    """A token cannot be made as asked; the message says why, for the person."""


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is the whole token, shown once and never again."""

    token: ApiToken
    secret: str


def _base62(data: bytes, width: int) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def _digest(token: str, key: str | bytes) -> str:
    return salted_hmac(KEY_SALT, token, secret=key, algorithm="sha256").hexdigest()


def _keys() -> list[str | bytes]:
    """The current key, then the fallbacks (the same order Django signs and checks in)."""
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


def is_well_formed(raw: object) -> bool:
    """Whether ``raw`` has a token's shape: checked before any hashing or query, so that
    huge, binary or non-ASCII input costs nothing."""
    return isinstance(raw, str) and len(raw) == TOKEN_LENGTH and bool(_TOKEN.fullmatch(raw))


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise TokenInvalid(f"Unknown scope: {', '.join(unknown)}.")
    if not scopes:
        raise TokenInvalid("Choose at least one scope.")
    return [scope for scope in Scope.values if scope in scopes]  # one order, no repeats


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise TokenInvalid("Give the token a name, such as where it will be used.")
    if len(name) > MAX_NAME_LENGTH:
        raise TokenInvalid(f"A name has at most {MAX_NAME_LENGTH} characters.")
    if validators.has_control_characters(name):
        raise TokenInvalid(validators.CONTROL_CHARACTERS_MESSAGE)
    return name


def _check_expiry(expires_at: datetime, now: datetime) -> datetime:
    if expires_at <= now:
        raise TokenInvalid("The expiry must be in the future.")
    if expires_at > now + timedelta(days=settings.API_TOKEN_MAX_DAYS):
        raise TokenInvalid(
            f"A token lasts at most {settings.API_TOKEN_MAX_DAYS} days: choose an earlier expiry."
        )
    return expires_at


def live_tokens(*, user: User) -> list[ApiToken]:
    """``user``'s tokens that still work."""
    return list(
        ApiToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now())
    )


@transaction.atomic
def api_token_create(
    *, user: User, name: str, scopes: list[str], expires_at: datetime | None = None
) -> NewToken:
    """Make a token for ``user`` (who is also the actor: nobody makes one for someone
    else). ``expires_at`` defaults to API_TOKEN_DEFAULT_DAYS from now and may be at most
    API_TOKEN_MAX_DAYS away. Raises TokenInvalid with a message for the person."""
    if user.email_verified_at is None:
        raise TokenInvalid(VERIFY_FIRST)
    now = timezone.now()
    name = check_name(name)
    scopes = _check_scopes(scopes)
    if expires_at is None:
        expires_at = now + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    expires_at = _check_expiry(expires_at, now)
    # Serialise one person's creations, so that two at once cannot pass the cap.
    User.objects.select_for_update().filter(pk=user.pk).first()
    if len(live_tokens(user=user)) >= MAX_LIVE_TOKENS_PER_USER:
        raise TokenInvalid(
            f"You have {MAX_LIVE_TOKENS_PER_USER} tokens that still work: revoke one first."
        )
    for _ in range(3):  # an id collision is a 1 in 10**14 event: retry, do not fail
        prefix = f"{SCHEME}_{''.join(secrets.choice(_BASE62) for _ in range(ID_LENGTH))}"
        secret = f"{prefix}_{_base62(secrets.token_bytes(SECRET_BYTES), SECRET_LENGTH)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    digest=_digest(secret, settings.SECRET_KEY),
                    scopes=scopes,
                    created_at=now,
                    expires_at=expires_at,
                )
        except IntegrityError:
            continue
        break
    else:  # pragma: no cover - three collisions in a row
        raise RuntimeError("could not draw a unique token id")
    audit.record(
        "accounts.api_token.created",
        category=audit.Category.SECURITY,
        actor=user,
        target=token,
        data={"prefix": prefix, "scopes": scopes, "expires_at": expires_at.isoformat()},
        personal_data={"name": name},
    )
    return NewToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User) -> bool:
    """Revoke ``token`` at once; False (and nothing recorded) if it already was."""
    now = timezone.now()
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if not changed:
        return False
    token.revoked_at = now
    audit.record(
        "accounts.api_token.revoked",
        category=audit.Category.SECURITY,
        actor=actor,
        target=token,
        data={"prefix": token.prefix},
    )
    return True


def api_tokens_revoke_all(*, user: User, actor: User | str, reason: str) -> int:
    """Revoke every token of ``user`` still unrevoked, at once; how many. One audit
    entry with the count (none when there was nothing to revoke). Called inside the
    caller's transaction (a password reset, "sign out everywhere")."""
    with transaction.atomic():
        revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(
                "accounts.api_token.revoked_all",
                category=audit.Category.SECURITY,
                actor=actor,
                target=user,
                data={"count": revoked, "reason": reason},
            )
    return revoked


def _refuse(reason: RefusalReason, *, token: ApiToken | None = None) -> TokenRefused:
    record_capped(
        "accounts.api_token.refused",
        category=audit.Category.SECURITY,
        actor=token.user if token is not None else None,
        data={"reason": reason, "prefix": token.prefix if token is not None else ""},
    )
    return TokenRefused(reason)


def api_token_authenticate(*, raw: str, ip: str | None) -> ApiToken:
    """The live token ``raw`` is, with its user loaded; TokenRefused otherwise.

    Notes the use (time and address) at most once per TOUCH_INTERVAL, and re-keys a
    token that matched only under a SECRET_KEY_FALLBACKS key.
    """
    if not is_well_formed(raw):
        raise TokenRefused("malformed")  # not audited: noise, and nobody to attribute it to
    prefix = raw[: len(SCHEME) + 1 + ID_LENGTH]  # well formed: "slp_" and the id
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    digests = [_digest(raw, key) for key in _keys()]
    matched = token is not None and any(
        constant_time_compare(token.digest, digest) for digest in digests
    )
    if token is None or not matched:
        raise _refuse("unknown")
    now = timezone.now()
    if token.revoked_at is not None:
        raise _refuse("revoked", token=token)
    if token.expires_at <= now:
        raise _refuse("expired", token=token)
    if not token.user.is_active:
        raise _refuse("inactive", token=token)
    if token.user.email_verified_at is None:
        raise _refuse("unverified", token=token)
    _touch(token, now=now, ip=ip, digest=digests[0])
    return token


def _touch(token: ApiToken, *, now: datetime, ip: str | None, digest: str) -> None:
    changes: dict[str, object] = {}
    if token.digest != digest:  # matched under a fallback key: re-key to the current one
        changes["digest"] = digest
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
        changes.update(last_used_at=now, last_used_ip=ip)
    if not changes:
        return
    # Conditional: of concurrent requests, one writes; the others change nothing.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - TOUCH_INTERVAL)
    if "digest" in changes:
        stale |= Q(digest=token.digest)
    ApiToken.objects.filter(stale, pk=token.pk).update(**changes)
    for field, value in changes.items():
        setattr(token, field, value)
