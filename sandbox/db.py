"""Where the sandbox keeps its state: in development, a database of its own.

The sandbox plays other companies' servers. With one SQLite file for both, a webhook
handler that holds our database's write lock while it calls "Stripe" would wait on
itself (the sandbox's request needs the same lock): on a real provider that cannot
happen, so the sandbox gets its own database (``DATABASES["sandbox"]``, configured in
development). Without that alias (tests) everything stays on ``default``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

ALIAS = "sandbox"
APP_LABELS = frozenset({"sandbox", "sandbox_stripe", "sandbox_calendly"})


def alias() -> str:
    return ALIAS if ALIAS in settings.DATABASES else DEFAULT_DB_ALIAS


def atomic() -> transaction.Atomic:
    return transaction.atomic(using=alias())


def on_commit(callback: Callable[[], None]) -> None:
    transaction.on_commit(callback, using=alias())


def close() -> None:
    for name in {alias(), DEFAULT_DB_ALIAS}:
        connections[name].close()


class SandboxRouter:
    """The sandbox's apps read, write and migrate on ``sandbox``; the rest never do."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return alias() if model._meta.app_label in APP_LABELS else None

    db_for_write = db_for_read

    def allow_relation(self, first: Any, second: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if ALIAS not in settings.DATABASES:
            return None
        return (db == ALIAS) == (app_label in APP_LABELS)
