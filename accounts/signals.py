"""Audit entries for account events, and the encryption canary."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import router
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts import rights
from accounts.models import EncryptionCanary, User
from audit import Category, record
from audit.services import record_capped
from core.encryption import blind_index, blind_index_bucket


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


@receiver(user_logged_out, dispatch_uid="audit_logged_out")
def audit_logged_out(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record("accounts.user.logged_out", category=Category.SECURITY, actor=user, target=user)


def ensure_encryption_canary(using: str = "default", **kwargs: Any) -> None:
    if not router.allow_migrate_model(using, EncryptionCanary):
        return  # another database (the development sandbox's) has no accounts tables
    if not EncryptionCanary.objects.using(using).exists():
        EncryptionCanary.objects.using(using).create(value=EncryptionCanary.PLAINTEXT)
