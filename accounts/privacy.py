"""What we hold on a person, kind by kind: each kind exports it and erases it.

accounts sits below payments and bookings, so the data-subject requests here
(``accounts.dsr``) cannot know their models. Each app registers one
:class:`DataKind` per kind of data with :data:`registry`, from its
``AppConfig.ready`` (pretix's shredders): bookings for bookings, consents and what
Calendly holds; payments for payments, refunds and what Stripe holds. The kinds of
data accounts itself keeps (the account, sessions, the audit trail, queued emails,
webhook payloads) are registered below.

A kind's ``erase`` is idempotent (run twice, it finds nothing left to do) and returns
what it did, for the request's record. A provider kind (``provider = True``) runs
after the commit, from the ``arguments`` its ``plan`` saved while the account still
named the person; the rest run in our database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from core.actors import Actor
from core.encryption import normalize_email


@dataclass(frozen=True)
class Subject:
    """The person a request is about: their account, and every email address and
    name our data knows them by (the account's, and those they gave when booking)."""

    user: Any
    emails: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @property
    def pseudonym(self) -> str:
        """Stable per account (HMAC of its id under SECRET_KEY): what stands for the
        person where evidence must be kept (consents, the erased account)."""
        return subject_pseudonym(self.user.pk)

    def mentioned_in(self, text: str | None) -> bool:
        """Whether ``text`` holds one of the person's emails or names."""
        if not text:
            return False
        folded = text.casefold()
        return any(needle.casefold() in folded for needle in self.needles)

    @property
    def needles(self) -> list[str]:
        # A one-letter name would match everything; a real one has at least three.
        return [value for value in (*self.emails, *self.names) if len(value) >= 3]


def subject_pseudonym(user_pk: Any) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"dsr-subject:{user_pk}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Step:
    """What an erasure step did: ``outcome`` is a sentence for the request's record,
    with no personal data."""

    outcome: str
    done: bool = True


@dataclass
class DataKind:
    """One kind of data about a person. Override what applies; the defaults hold
    nothing, export nothing and erase nothing.

    ``position`` orders the erasure steps (the account is anonymised last but one,
    the audit trail last); ``provider`` kinds run after the commit.
    """

    name: str
    title: str
    position: int = 50
    provider: bool = False

    def identities(self, user: Any) -> tuple[set[str], set[str]]:
        """Emails and names the person is known by in this kind's data."""
        return set(), set()

    def export(self, subject: Subject) -> Any:
        """The data, JSON-serialisable (None: nothing to export)."""
        return None

    def holds(self, subject: Subject) -> list[str]:
        """Reasons this kind's data must not be erased now (a legal hold)."""
        return []

    def audit_targets(self, subject: Subject) -> list[tuple[str, str]]:
        """The audit trail's (target_type, target_id) pairs of this kind's objects."""
        return []

    def plan(self, subject: Subject) -> dict[str, Any] | None:
        """A provider kind's arguments, taken while the account still names the person
        (None: nothing to ask the provider)."""
        return None

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        return Step("nothing held")


@dataclass
class Registry:
    _kinds: dict[str, DataKind] = field(default_factory=dict)

    def register(self, kind: DataKind) -> DataKind:
        """Add a kind (again under the same name: replaced, so a reload is harmless)."""
        self._kinds[kind.name] = kind
        return kind

    def __iter__(self) -> Iterator[DataKind]:
        return iter(sorted(self._kinds.values(), key=lambda kind: (kind.position, kind.name)))

    def get(self, name: str) -> DataKind:
        return self._kinds[name]


registry = Registry()


def subject_for(user: Any) -> Subject:
    """The person behind ``user``, with every identity the registered kinds know."""
    emails = {normalize_email(user.email)} if user.email else set()
    names = {user.name.strip()} if user.name and user.name.strip() else set()
    for kind in registry:
        more_emails, more_names = kind.identities(user)
        emails |= {normalize_email(email) for email in more_emails if email}
        names |= {name.strip() for name in more_names if name and name.strip()}
    return Subject(user=user, emails=frozenset(emails), names=frozenset(names))


def jsonable(value: Any) -> Any:
    """``value`` as JSON would give it back (dates as ISO text, UUIDs as strings)."""
    return json.loads(json.dumps(value, default=str))


def mentions(subject: Subject, values: Iterable[str | None]) -> bool:
    return any(subject.mentioned_in(value) for value in values)
