"""Critical alerts, one per incident, and the watchdogs that raise them.

:func:`raise_alert` opens an incident (an :class:`~core.models.Alert` row) or keeps
an open one open; only the raise that opens it logs at CRITICAL, tells Sentry and
mails the people on call, so a problem seen on every five-minute pass is one email.
:func:`clear_alert` closes it and sends one recovery message to the same people. Any
code may raise and clear its own keys (``retention.failed.<rule>``,
``reconcile.failed``); the watchdogs below do it for conditions that no single
operation notices.

Who hears of it: ``ALERT_EMAILS`` (required in production, config/checks.py), else
``ADMINS``, else the active staff members of the alert's group. The email goes
through the outbox (core/notify.py): a mail server that is down delays it and never
loses it, and never fails the code that raised it.

Everything written here (log records, Sentry messages, emails, rows) holds counts,
names of keys, rules and settings: never personal data, never a secret's value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import date
from typing import NamedTuple

import sentry_sdk
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from sentry_sdk.integrations.logging import ignore_logger

from core import notify
from core.models import Alert

logger = logging.getLogger("slotpay.alerts")
# raise_alert sends Sentry its own fatal message: without this, Sentry's logging
# integration would make a second event of the CRITICAL record.
ignore_logger(logger.name)

SUMMARY_LENGTH = Alert._meta.get_field("summary").max_length or 500
KEY_LENGTH = Alert._meta.get_field("key").max_length or 200
# A watchdog that raised an exception: its own alert, cleared once it runs again.
WATCHDOG_FAILED = "watchdog.failed"


def recipients(group: str) -> list[str]:
    """ALERT_EMAILS, else ADMINS, else the active staff members of ``group``."""
    if settings.ALERT_EMAILS:
        return list(settings.ALERT_EMAILS)
    admins = [admin if isinstance(admin, str) else admin[1] for admin in settings.ADMINS]
    if admins:
        return admins
    members = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=group)
        .distinct()
        .order_by("pk")
    )
    return [user.email for user in members if user.email]


def raise_alert(
    key: str, *, summary: str, lines: Iterable[str] = (), group: str = "Finance"
) -> bool:
    """Open the incident ``key`` (e.g. ``"webhooks.dead_letters"``) or keep it open.

    Only when it was not open: log at CRITICAL, send Sentry a fatal message (when
    Sentry is configured) and mail the people on call (module docstring). Returns
    True when this call opened it. Call it outside a transaction that is about to
    roll back: the incident is stored, and mailed, with the caller's commit.
    """
    if not key or len(key) > KEY_LENGTH:
        raise ValueError(f"an alert key is 1 to {KEY_LENGTH} characters")
    # One line: it is the email's subject.
    summary = " ".join(summary.split())[:SUMMARY_LENGTH]
    lines = list(lines)
    now = timezone.now()
    with transaction.atomic():
        if _seen_again(key, summary, now):
            return False
        try:
            with transaction.atomic():  # a savepoint: the losing raiser carries on
                alert = Alert.objects.create(
                    key=key, summary=summary, group=group, opened_at=now, last_seen_at=now
                )
        except IntegrityError:
            # Another process opened the same incident between our two statements.
            _seen_again(key, summary, now)
            return False
        notify.send(
            "alert",
            "alert",
            recipients(group),
            {"alert": alert, "subject": summary, "lines": lines},
        )
    logger.critical("alert.raised", extra={"alert": key, "summary": summary})
    if settings.SENTRY_DSN:
        sentry_sdk.capture_message(f"{key}: {summary}", level="fatal")
    return True


def _seen_again(key: str, summary: str, now: object) -> bool:
    updated = Alert.objects.filter(key=key, cleared_at__isnull=True).update(
        summary=summary, last_seen_at=now, times_seen=F("times_seen") + 1
    )
    return bool(updated)


def clear_alert(key: str, *, summary: str = "") -> bool:
    """Close ``key`` if it is open and send one recovery message to the people the
    alert went to (as they are listed now). True when it was open."""
    with transaction.atomic():
        # Locked and read again after any other clearer commits: one recovery message.
        alert = Alert.objects.select_for_update().filter(key=key, cleared_at__isnull=True).first()
        if alert is None:
            return False
        alert.cleared_at = timezone.now()
        alert.save(update_fields=["cleared_at"])
        notify.send(
            "alert_cleared",
            "alert_cleared",
            recipients(alert.group),
            {"alert": alert, "subject": alert.summary, "resolution": summary},
        )
    logger.info("alert.cleared", extra={"alert": key, "times_seen": alert.times_seen})
    return True


def open_alerts(prefix: str = "") -> list[str]:
    """Keys of the open incidents, all of them or those equal to or under ``prefix``."""
    alerts = Alert.objects.filter(cleared_at__isnull=True)
    if prefix:
        alerts = alerts.filter(Q(key=prefix) | Q(key__startswith=f"{prefix}."))
    return sorted(alerts.values_list("key", flat=True))


# --- Watchdogs -----------------------------------------------------------------------


class Problem(NamedTuple):
    """What a watchdog sees wrong now: ``key`` is the watchdog's name or under it
    (``"<name>.<detail>"``), so the runner knows which open alerts are its own."""

    key: str
    summary: str
    lines: Sequence[str] = ()
    group: str = "Finance"


Check = Callable[[], Iterable[Problem | tuple[str, str, Sequence[str]]]]

_watchdogs: dict[str, Check] = {}


def register_watchdog(name: str, check: Check) -> Check:
    """Add ``check`` to every watchdog pass (core.tasks.run_watchdogs, every five minutes).

    ``check()`` returns the problems true right now as :class:`Problem` or ``(key,
    summary, lines)``, each key ``name`` or ``name.<detail>``; an empty result means
    all is well. The runner raises each problem and clears every open alert under
    ``name`` no longer reported. A check must be cheap, must never print a secret or
    personal data, and may repair what it safely can (say so in its summary). Apps
    register theirs in a ``watchdogs.py`` module, which the runner imports.
    """
    if not name or name.startswith(WATCHDOG_FAILED):
        raise ValueError(f"a watchdog needs a name, not under {WATCHDOG_FAILED}")
    _watchdogs[name] = check
    return check


def watchdogs() -> dict[str, Check]:
    autodiscover_modules("watchdogs")
    return dict(_watchdogs)


class Outcome(NamedTuple):
    raised: list[str]
    cleared: list[str]
    failed: list[str]


def run_watchdogs(*, only: Collection[str] | None = None) -> Outcome:
    """Run every watchdog (or those named in ``only``) once: raise what each reports,
    clear what it no longer does.

    A watchdog that fails (an exception, a key outside its name) raises its own alert
    and leaves its earlier alerts as they are: not knowing is not "all clear". It
    never stops the others.
    """
    outcome = Outcome([], [], [])
    chosen = watchdogs()
    if only is not None:
        unknown = set(only) - set(chosen)
        if unknown:
            raise ValueError(f"no such watchdog: {', '.join(sorted(unknown))}")
        chosen = {name: chosen[name] for name in only}
    for name, check in sorted(chosen.items()):
        failed_key = f"{WATCHDOG_FAILED}.{name}"
        try:
            problems = [Problem(*problem) for problem in check()]
            strays = [p.key for p in problems if p.key != name and not p.key.startswith(f"{name}.")]
            if strays:
                raise ValueError(f"keys outside the watchdog's name: {', '.join(strays)}")
        except Exception as exc:  # any failure of one check is reported, then the next runs
            # With the traceback, which the logging filters mask like every record.
            logger.exception(
                "alert.watchdog_failed", extra={"watchdog": name, "error": type(exc).__name__}
            )
            outcome.failed.append(name)
            if raise_alert(
                failed_key,
                summary=f"The watchdog {name} fails ({type(exc).__name__}): "
                "what it watches is not being checked.",
                lines=["The worker's log has the details under alert.watchdog_failed."],
            ):
                outcome.raised.append(failed_key)
            continue
        if clear_alert(failed_key, summary=f"The watchdog {name} runs again."):
            outcome.cleared.append(failed_key)
        for problem in problems:
            if raise_alert(
                problem.key, summary=problem.summary, lines=problem.lines, group=problem.group
            ):
                outcome.raised.append(problem.key)
        reported = {problem.key for problem in problems}
        for key in open_alerts(name):
            if key not in reported and clear_alert(key, summary="No longer reported."):
                outcome.cleared.append(key)
    return outcome


# --- The keys' ages (every app's keys are settings, so core watches them) --------------


def keys_due_for_rotation(*, today: date | None = None) -> list[Problem]:
    """Each key in ROTATED_KEYS within KEY_ROTATION_WARNING_DAYS of its rotation date
    (KEY_CREATED + KEY_ROTATION_DAYS) or past it; in production, a key without a
    creation date too. Keys are named, never shown."""
    today = today or timezone.now().date()
    problems = []
    for name in settings.ROTATED_KEYS:
        key = f"keys.rotation.{name}"
        created = settings.KEY_CREATED.get(name)
        if created is None:
            if settings.ENVIRONMENT == "production":
                problems.append(
                    Problem(
                        key,
                        f"{name} has no creation date: its rotation cannot be tracked.",
                        [f"Set {name}_CREATED to the date the key was made (YYYY-MM-DD)."],
                    )
                )
            continue
        days_left = settings.KEY_ROTATION_DAYS - (today - created).days
        if days_left > settings.KEY_ROTATION_WARNING_DAYS:
            continue
        if days_left < 0:
            due = f"overdue by {-days_left} days"
        else:
            due = f"due in {days_left} days" if days_left else "due today"
        problems.append(
            Problem(
                key,
                f"{name} rotation {due} (made {created.isoformat()}, rotated every "
                f"{settings.KEY_ROTATION_DAYS} days).",
                [
                    "The security policy (docs/) gives the rotation procedure; set "
                    f"{name}_CREATED to the new key's date when done."
                ],
            )
        )
    return problems


register_watchdog("keys.rotation", keys_due_for_rotation)
