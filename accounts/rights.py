"""Who may change whose rights: a superuser, and nobody else.

Rights are ``is_superuser``, ``is_staff``, ``is_active`` on a staff account, group
membership, direct permissions, and the permissions a group holds. Besides rights, a
staff account's email (its sign-in) and any password can only be changed by a
superuser: either would hand over the account.

The rules hold twice. The back-office does not show those fields to anyone else and
refuses, audited, a request that tries them anyway (``accounts.admin``). Underneath,
the model layer refuses a change of rights made while a non-superuser's request is
running, whatever view made it (``User.save`` and the many-to-many signals below),
and audits every grant and removal with the person who really acted. Outside a
request (a management command, a migration, the shell) the operator acts: allowed,
and audited as ``system``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NoReturn

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db.models.signals import m2m_changed

import audit
from core.http import current_user

logger = logging.getLogger(__name__)

RIGHTS_FIELDS = ("is_superuser", "is_staff", "groups", "user_permissions")
SYSTEM = "system"


def acting_user() -> Any:
    """The signed-in user of the request being served, or None (no request, or anonymous)."""
    user = current_user.get()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def actor_or_system() -> Any:
    return acting_user() or SYSTEM


def is_staff_account(user: Any) -> bool:
    return bool(user.is_staff or user.is_superuser)


def may_change_rights(actor: Any) -> bool:
    """``actor`` None is the operator outside any request."""
    return actor is None or bool(actor.is_superuser)


def may_set_password(actor: Any, target: Any) -> bool:
    """Only a superuser sets someone's password in the back-office (people change their
    own through the site, knowing the old one)."""
    return actor is None or bool(actor.is_superuser)


def may_change_email(actor: Any, target: Any) -> bool:
    """A client's email may be corrected by staff who may change users; a staff
    account's only by a superuser."""
    return actor is None or bool(actor.is_superuser) or not is_staff_account(target)


def rights_posted_change(target: Any | None, posted: Any) -> list[str]:
    """The rights fields whose value posted by a superuser's admin form (which shows
    them all: an unticked box is absent) differs from ``target``'s; and a staff
    member's email, which is how they sign in."""
    if target is None:
        return [name for name in RIGHTS_FIELDS if posted.get(name)]
    changed = [
        name
        for name in ("is_superuser", "is_staff", "is_active")
        if bool(posted.get(name)) != bool(getattr(target, name))
    ]
    for name in ("groups", "user_permissions"):
        current = {str(pk) for pk in getattr(target, name).values_list("pk", flat=True)}
        if set(posted.getlist(name)) != current:
            changed.append(name)
    email = posted.get("email")
    if (
        email is not None
        and is_staff_account(target)
        and email.strip().lower() != target.email.lower()
    ):
        changed.append("email")
    return changed


def protected_fields(actor: Any, target: Any | None) -> list[str]:
    """The fields of ``target`` (None: a new user) that ``actor`` may not set."""
    if may_change_rights(actor):
        return []
    # Whether an account may sign in at all is a right too, a client's included.
    fields = [*RIGHTS_FIELDS, "is_active", "password"]
    if target is not None and is_staff_account(target):
        # Everything about a staff account: its time zone too (what its admin shows).
        fields += ["email", "name", "time_zone"]
    return fields


def refuse(*, actor: Any, target: Any | None, attempted: Iterable[str], via: str) -> NoReturn:
    """Audit an attempt to change what ``actor`` may not, then refuse it (403).

    Call it outside any transaction that the refusal will roll back (the admin's
    change view is atomic): otherwise the entry goes with it.
    """
    fields = sorted(set(attempted))
    audit.record(
        "accounts.user.change_refused",
        category=audit.Category.SECURITY,
        actor=actor,
        target=target,
        data={"fields": fields, "via": via},
    )
    logger.warning(
        "accounts.rights.refused",
        extra={
            "actor": getattr(actor, "pk", None),
            "target": getattr(target, "pk", None),
            "fields": fields,
        },
    )
    raise PermissionDenied("Only a superuser may change these fields.")


# --- The model layer: User.save calls these, the signals cover memberships -------------


def check_user_save(user: Any, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Refuse a change of rights by a non-superuser; return what changed (for the audit).

    ``previous`` holds the stored rights fields (None for a new user).
    """
    actor = acting_user()
    if previous is None:
        changed = {
            name: {"from": False, "to": True}
            for name in ("is_staff", "is_superuser")
            if getattr(user, name)
        }
    else:
        changed = {
            name: {"from": previous[name], "to": getattr(user, name)}
            for name in previous
            if previous[name] != getattr(user, name)
        }
    if not changed:
        return changed
    rights = [name for name in changed if name != "is_active"]
    deactivating_staff = (
        "is_active" in changed and previous and (previous["is_staff"] or previous["is_superuser"])
    )
    if (rights or deactivating_staff) and not may_change_rights(actor):
        logger.warning(
            "accounts.rights.refused",
            extra={"actor": actor.pk, "target": user.pk, "fields": sorted(changed)},
        )
        raise PermissionDenied("Only a superuser may change a user's rights.")
    if is_staff_account(user) and previous and user.memberships.exists():
        # A member sees a builder's clients and refunds them, outside staff's controls.
        raise PermissionDenied(
            "This account is a builder's member: end its memberships before making it staff."
        )
    return changed


def audit_rights_changed(user: Any, changed: dict[str, Any]) -> None:
    audit.record(
        "accounts.user.rights_changed",
        category=audit.Category.SECURITY,
        actor=actor_or_system(),
        target=user,
        data={"changes": changed},
    )


def _names(model: Any, pks: Iterable[Any] | None) -> list[str]:
    if not pks:
        return []
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    if model is Permission:
        return sorted(
            f"{app}.{codename}"
            for app, codename in Permission.objects.filter(pk__in=pks).values_list(
                "content_type__app_label", "codename"
            )
        )
    return sorted(str(pk) for pk in pks)


def _membership_changed(
    sender: Any,
    instance: Any,
    *,
    action: str,
    reverse: bool,
    model: Any,
    pk_set: Any,
    **_: Any,
) -> None:
    if action.startswith("pre_"):
        actor = acting_user()
        if not may_change_rights(actor):
            logger.warning(
                "accounts.rights.refused",
                extra={"actor": actor.pk, "target": instance.pk, "relation": sender._meta.label},
            )
            raise PermissionDenied("Only a superuser may change groups or permissions.")
        return
    # post_add, post_remove, post_clear: one entry per user (or per group) changed.
    what = action.removeprefix("post_")
    relation = sender._meta.label_lower
    if reverse:
        # group.user_set.add(user, ...): the users are in pk_set.
        label = f"{instance._meta.label_lower}:{getattr(instance, 'name', instance.pk)}"
        for pk in sorted(pk_set or []):
            audit.record(
                "accounts.user.rights_changed",
                category=audit.Category.SECURITY,
                actor=actor_or_system(),
                target=(model._meta.label_lower, pk),
                data={"relation": relation, what: [label]},
            )
        return
    target_label = instance._meta.label_lower
    action_name = (
        "auth.group.permissions_changed"
        if target_label == "auth.group"
        else "accounts.user.rights_changed"
    )
    audit.record(
        action_name,
        category=audit.Category.SECURITY,
        actor=actor_or_system(),
        target=instance,
        data={"relation": relation, what: _names(model, pk_set)},
    )


def connect_signals(user_model: Any) -> None:
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(
            _membership_changed, sender=through, dispatch_uid=f"rights_{through._meta.label}"
        )


__all__ = [
    "RIGHTS_FIELDS",
    "acting_user",
    "check_user_save",
    "connect_signals",
    "may_change_email",
    "may_change_rights",
    "may_set_password",
    "protected_fields",
    "refuse",
    "rights_posted_change",
]
