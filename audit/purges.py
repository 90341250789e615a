"""The retention rules, one registry for every app, and the runner that purges by them.

Each app declares what it purges in its own ``retention.py``: a :class:`RetentionRule`
per kind of record, handed to :func:`register` at import, and the legal holds it knows
of, handed to :func:`register_hold`. :func:`rules` imports every app's ``retention``
module first, so nothing else has to. The rules run in the order they were registered
(``INSTALLED_APPS`` order; a rule that needs another's purge done first imports that
module, which registers it first).

The contract of a rule:

- ``purge_batch(now, limit)`` purges at most ``limit`` rows due at ``now`` in ONE short
  transaction and returns how many; 0 means nothing due is left. Rows it purged never
  come back as due, so a run that is killed loses at most one batch (rolled back) and
  the next run takes up where it stopped.
- ``forecast(now)`` says, without writing, what purging at ``now`` would do: the rows
  due, the rows due but postponed by a hold (by the hold's name), and when the next row
  not yet due becomes due. It must agree with ``purge_batch``: ``retention_report`` is
  what the next ``retention_purge`` does.

A legal hold (an open dispute, a pending refund, an open data-subject request) names
what it covers as audit targets, ``("payments.payment", "42")``; several apps may
register under one hold name, each naming what that hold covers among its own models.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Min, QuerySet
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from audit.categories import Category
from audit.services import record
from core.alerts import clear_alert, raise_alert

logger = logging.getLogger(__name__)

ACTOR = "audit.purges"

HoldTargets = Callable[[], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Forecast:
    """What purging at a given time would do."""

    due: int  # rows a run would purge now
    held: dict[str, int] = field(default_factory=dict)  # due but postponed, by hold name
    next_due_at: datetime | None = None  # when the next row not yet due becomes due


class RetentionRule(ABC):
    """One kind of record and how long it is kept; subclasses set the attributes."""

    name: str  # "bookings.personal_data"
    description: str  # one line: what goes and how (anonymised / deleted)
    period: timedelta
    counted_from: str  # "the appointment's end", "the payment's creation"

    def cutoff(self, now: datetime) -> datetime:
        """Rows whose clock is at or before this are due."""
        return now - self.period

    @abstractmethod
    def forecast(self, now: datetime) -> Forecast:
        """What ``purge_batch`` would do at ``now``, batch after batch, without writing."""

    @abstractmethod
    def purge_batch(self, now: datetime, limit: int) -> int:
        """Purge at most ``limit`` rows due at ``now`` in one transaction; 0 when done."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class RowsRule(RetentionRule):
    """A rule over one model's rows that fall due ``period`` after a date column.

    Subclasses give the rows it applies to (due or not), the column, and what purging a
    set of due rows means (delete, anonymise). Forecast and purge select the same rows,
    so they agree by construction. ``target_type`` names the rows as holds do ("" when
    no hold covers them); ``held`` may be overridden when a row is covered through
    another record.
    """

    clock: str  # the date column the period is counted from
    target_type: str = ""

    @abstractmethod
    def candidates(self) -> QuerySet[Any]:
        """Every row this rule will purge one day, due or not."""

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        """Purge ``rows`` (all due, none held), inside the batch's transaction: delete
        them, unless the rule anonymises or must count otherwise."""
        return int(rows.delete()[0])

    def purgeable(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        """Of the due rows no hold covers, those a batch may take now: all of them,
        unless some must wait for others (a row another still refers to)."""
        return rows

    def held(self, expired: QuerySet[Any]) -> dict[Any, str]:
        """The rows of ``expired`` a hold postpones: pk -> hold name."""
        if not self.target_type:
            return {}
        by_pk = held_pks(self.target_type)
        if not by_pk:
            return {}
        return {
            pk: by_pk[str(pk)]
            for pk in expired.filter(pk__in=list(by_pk)).values_list("pk", flat=True)
        }

    def expired(self, now: datetime) -> QuerySet[Any]:
        return self.candidates().filter(**{f"{self.clock}__lte": self.cutoff(now)})

    def forecast(self, now: datetime) -> Forecast:
        expired = self.expired(now)
        held = self.held(expired)
        first_waiting = (
            self.candidates()
            .filter(**{f"{self.clock}__gt": self.cutoff(now)})
            .aggregate(first=Min(self.clock))["first"]
        )
        return Forecast(
            due=expired.count() - len(held),
            held=dict(Counter(held.values())),
            next_due_at=first_waiting + self.period if first_waiting else None,
        )

    def purge_batch(self, now: datetime, limit: int) -> int:
        with transaction.atomic():
            expired = self.expired(now)
            held = self.held(expired)
            pks = list(
                self.purgeable(expired.exclude(pk__in=list(held)))
                .order_by("pk")
                .values_list("pk", flat=True)[:limit]
            )
            if not pks:
                return 0
            # Re-filtered by the due condition: a row changed since it was read is left.
            return self.purge_rows(expired.filter(pk__in=pks), now)


_rules: dict[str, RetentionRule] = {}
_holds: dict[str, list[HoldTargets]] = {}
_discovered = False


def register(rule: RetentionRule) -> RetentionRule:
    """Add ``rule`` to the registry (at import of an app's retention module)."""
    known = _rules.get(rule.name)
    if known is not None and type(known) is not type(rule):
        raise ValueError(f"two retention rules are named {rule.name!r}")
    _rules[rule.name] = rule
    return rule


def _discover() -> None:
    global _discovered  # noqa: PLW0603 (imported once per process)
    if not _discovered:
        autodiscover_modules("retention")
        _discovered = True


def rules() -> list[RetentionRule]:
    """Every app's rules, in the order they run."""
    _discover()
    return list(_rules.values())


def register_hold(name: str, targets: HoldTargets) -> None:
    """Declare a legal hold: ``targets()`` lists what it covers now, as audit targets.
    Called again with the same name, it adds to what that hold covers."""
    callables = _holds.setdefault(name, [])
    if targets not in callables:
        callables.append(targets)


def held_targets() -> dict[tuple[str, str], str]:
    """Everything under a hold now: (target type, pk) -> the first hold that covers it."""
    _discover()
    held: dict[tuple[str, str], str] = {}
    for name, callables in _holds.items():
        for targets in callables:
            for target_type, pk in targets():
                held.setdefault((target_type, str(pk)), name)
    return held


def held_pks(target_type: str) -> dict[str, str]:
    """The pks of one target type under a hold: pk (as str) -> hold name."""
    return {pk: name for (kind, pk), name in held_targets().items() if kind == target_type}


def report(now: datetime | None = None) -> list[tuple[RetentionRule, Forecast]]:
    """Each rule with what a run at ``now`` would purge (a dry run: nothing written)."""
    moment = now or timezone.now()
    return [(rule, rule.forecast(moment)) for rule in rules()]


def run(
    now: datetime | None = None,
    *,
    batch_size: int | None = None,
    rules: Iterable[str] | None = None,
    failed: list[str] | None = None,
) -> dict[str, int]:
    """Purge what every rule (or the named ones) has due: rule name -> rows purged.

    Batch after batch, each its own short transaction, until a rule has nothing due.
    A rule that purged something is audited once (``retention.purged``); a rule that
    fails is logged and audited (``retention.failed``), its name added to ``failed``,
    and the others still run.
    """
    moment = now or timezone.now()
    limit = batch_size or settings.RETENTION_BATCH_SIZE
    chosen = _chosen(rules)
    purged: dict[str, int] = {}
    for rule in chosen:
        rows = 0
        try:
            while batch := rule.purge_batch(moment, limit):
                rows += batch
        except Exception as exc:  # noqa: BLE001 (one rule failing must not stop the rest)
            purged[rule.name] = rows
            _failed(rule, rows, exc)
            if failed is not None:
                failed.append(rule.name)
            continue
        purged[rule.name] = rows
        clear_alert(_alert_key(rule), summary=f"Retention rule {rule.name} ran again.")
        if rows:
            record(
                "retention.purged",
                category=Category.DATA,
                actor=ACTOR,
                data={
                    "rule": rule.name,
                    "rows": rows,
                    "held": rule.forecast(moment).held,
                    "at": moment.isoformat(),
                },
            )
    return purged


@shared_task(name="audit.purges.purge", ignore_result=True)  # type: ignore[untyped-decorator]
def purge() -> dict[str, int]:
    """Periodic (beat, hourly): run every rule; webhook payloads are due by the hour."""
    return run()


def _chosen(names: Iterable[str] | None) -> list[RetentionRule]:
    every = rules()
    if names is None:
        return every
    wanted = set(names)
    unknown = wanted - {rule.name for rule in every}
    if unknown:
        raise ValueError(f"unknown retention rules: {', '.join(sorted(unknown))}")
    return [rule for rule in every if rule.name in wanted]


def _alert_key(rule: RetentionRule) -> str:
    return f"retention.failed.{rule.name}"


def _failed(rule: RetentionRule, rows: int, exc: Exception) -> None:
    # The exception's text can quote a row's values: only its class is logged.
    error = type(exc).__name__
    logger.error("retention.rule.failed", extra={"rule": rule.name, "rows": rows, "error": error})
    record(
        "retention.failed",
        category=Category.DATA,
        actor=ACTOR,
        data={"rule": rule.name, "rows": rows, "error": error},
    )
    raise_alert(
        _alert_key(rule),
        summary=f"Retention rule {rule.name} failed ({error}): what it keeps is overdue.",
        lines=[
            f"Rows purged before it failed: {rows} (that batch was rolled back).",
            "The log record retention.rule.failed has the rule; the next run retries.",
        ],
        group="Privacy",
    )


__all__ = [
    "Forecast",
    "RetentionRule",
    "RowsRule",
    "held_pks",
    "held_targets",
    "purge",
    "register",
    "register_hold",
    "report",
    "rules",
    "run",
]
