"""Audit entries for account events, the "recent sign-ins" rows, and the encryption
canary."""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import router
from django.db.models.signals import post_save
from django.dispatch import receiver
from ua_parser import parse as ua_parse

from accounts import (
    emails,  # noqa: F401 (registers its task in every process, workers too)
    rights,
)
from accounts.models import EncryptionCanary, SignIn, User
from audit import Category, record
from audit.services import record_capped
from core.encryption import blind_index, blind_index_bucket
from core.http import client_ip
from core.ratelimit import rate_limited


@receiver(post_save, sender=User, dispatch_uid="audit_user_created")
def audit_user_created(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        record(
            "accounts.user.created",
            category=Category.SECURITY,
            # The staff member who added the account, else the sign-up itself.
            actor=rights.acting_user() or "accounts",
            target=instance,
            data={"is_staff": instance.is_staff, "is_superuser": instance.is_superuser},
            personal_data={"email": instance.email},
        )


@receiver(user_logged_in, dispatch_uid="audit_login_succeeded")
def audit_login_succeeded(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    record("accounts.user.login_succeeded", category=Category.SECURITY, actor=user, target=user)


# A user agent string longer than this is not a browser's: only its start is parsed.
MAX_USER_AGENT = 512


def sign_in_network(address: str | None) -> str:
    """The network a sign-in came from, never the address: /24 for IPv4, /64 for IPv6
    (an IPv4-mapped IPv6 address counts as IPv4)."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def sign_in_device(user_agent: str) -> str:
    """ "Firefox on Linux": the browser and the system, from the user agent string."""
    agent = "".join(c for c in user_agent[:MAX_USER_AGENT] if c.isprintable())
    if not agent.strip():
        return "Unknown device"
    result = ua_parse(agent)
    browser = result.user_agent.family if result.user_agent else ""
    system = result.os.family if result.os else ""
    browser = "" if browser == "Other" else browser
    system = "" if system == "Other" else system
    if browser and system and browser != system:
        described = f"{browser} on {system}"
    else:
        described = browser or system or "Unknown device"
    return described[:100]


@receiver(user_logged_in, dispatch_uid="record_sign_in")
def record_sign_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    """A row for "Recent sign-ins" on the account page."""
    if request is None or user is None or user.pk is None:
        return
    SignIn.objects.create(
        user=user,
        network=sign_in_network(client_ip(request)),
        device=sign_in_device(request.META.get("HTTP_USER_AGENT", "")),
    )


def _sealed_index(index: str, *, email: str = "") -> dict[str, Any]:
    """The email tried and its full blind index in the sealed, redactable part; only
    a bucket of the index in the chained part."""
    if not index:
        return {}
    personal = {"email": email, "email_index": index} if email else {"email_index": index}
    return {"data": {"email_bucket": blind_index_bucket(index)}, "personal_data": personal}


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    """Counted, and audited up to the hourly limit: failures come in floods."""
    attempted = str(credentials.get("username") or credentials.get("email") or "")
    record_capped(
        "accounts.user.login_failed",
        category=Category.SECURITY,
        actor=None,
        **_sealed_index(blind_index(attempted) if attempted else "", email=attempted),
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def audit_locked_out(sender: Any, request: Any, username: str | None, **kwargs: Any) -> None:
    """Sent by django-axes for the failure that reaches a limit and for every attempt
    refused while it holds. ``username`` is already the blind index (axes_username),
    kept in the sealed, redactable part."""
    record_capped(
        "accounts.user.locked_out",
        category=Category.SECURITY,
        actor=None,
        **_sealed_index(username or ""),
    )


@receiver(rate_limited, dispatch_uid="audit_rate_limited")
def audit_rate_limited(
    sender: Any, request: Any, limit: str, retry_after: int, **kwargs: Any
) -> None:
    """A request refused by a rate limit (core.ratelimit): counted, and audited up to
    the hourly limit. Only the limit's name (such as "sign_in.email"), never the email
    or address it counted by (the entry's own ip column keeps the truncated address)."""
    user = getattr(request, "user", None)
    record_capped(
        "core.request.throttled",
        category=Category.SECURITY,
        actor=user if user is not None and user.is_authenticated else None,
        data={"limit": limit, "retry_after": retry_after},
    )


@receiver(user_logged_out, dispatch_uid="audit_logged_out")
def audit_logged_out(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record("accounts.user.logged_out", category=Category.SECURITY, actor=user, target=user)


def ensure_encryption_canary(using: str = "default", **kwargs: Any) -> None:
    if not router.allow_migrate_model(using, EncryptionCanary):
        return  # another database (the development sandbox's) has no accounts tables
    if not EncryptionCanary.objects.using(using).exists():
        EncryptionCanary.objects.using(using).create(value=EncryptionCanary.PLAINTEXT)
