"""One incident is one alert and one recovery message, whoever raises it and how often;
the watchdogs' runner raises and clears for them and survives one that crashes."""

from __future__ import annotations

import logging
import threading
from datetime import date

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection

from accounts.models import User
from core import alerts
from core.alerts import Problem, clear_alert, raise_alert, run_watchdogs
from core.models import Alert

pytestmark = pytest.mark.django_db(transaction=True)

ON_CALL = ["oncall@slotpay.example", "cto@slotpay.example"]


@pytest.fixture(autouse=True)
def on_call(settings: pytest.FixtureRequest) -> None:
    settings.ALERT_EMAILS = ON_CALL
    settings.ADMINS = [("Admins", "admins@slotpay.example")]


@pytest.fixture
def only_these_watchdogs(monkeypatch: pytest.MonkeyPatch) -> dict[str, alerts.Check]:
    """The runner with the watchdogs a test registers, and none of the apps': their
    modules are imported first, so the runner's discovery registers nothing more."""
    alerts.watchdogs()
    registered: dict[str, alerts.Check] = {}
    monkeypatch.setattr(alerts, "_watchdogs", registered)
    return registered


def _subjects() -> list[str]:
    return [message.subject for message in mail.outbox]


def test_an_incident_raised_three_times_is_one_email_then_one_recovery() -> None:
    assert raise_alert("webhooks.dead_letters", summary="2 events dead-lettered.", lines=["a"])
    assert not raise_alert("webhooks.dead_letters", summary="3 events dead-lettered.")
    assert not raise_alert("webhooks.dead_letters", summary="3 events dead-lettered.")

    [alert] = Alert.objects.all()
    assert (alert.times_seen, alert.summary, alert.is_open) == (3, "3 events dead-lettered.", True)
    [message] = mail.outbox
    assert message.subject == "[Slotpay alert] 2 events dead-lettered."
    assert message.to == ON_CALL
    assert "webhooks.dead_letters" in message.body
    assert "a" in message.body.splitlines()

    assert clear_alert("webhooks.dead_letters", summary="All replayed.")
    assert not clear_alert("webhooks.dead_letters")

    alert.refresh_from_db()
    assert alert.cleared_at is not None
    assert _subjects() == [
        "[Slotpay alert] 2 events dead-lettered.",
        "[Slotpay recovered] 3 events dead-lettered.",
    ]
    assert "All replayed." in mail.outbox[1].body
    assert "seen 3 times" in mail.outbox[1].body
    assert mail.outbox[1].to == ON_CALL


def test_a_problem_back_after_it_cleared_is_a_new_incident() -> None:
    raise_alert("reconcile.failed", summary="Reconciliation failed.")
    clear_alert("reconcile.failed")

    assert raise_alert("reconcile.failed", summary="Reconciliation failed.")

    assert Alert.objects.filter(key="reconcile.failed").count() == 2
    assert Alert.objects.filter(key="reconcile.failed", cleared_at__isnull=True).count() == 1
    assert len(mail.outbox) == 3


def test_clearing_what_was_never_raised_sends_nothing() -> None:
    assert not clear_alert("retention.failed.bookings")
    assert mail.outbox == []


def test_an_alert_is_logged_at_critical_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="slotpay.alerts"):
        raise_alert("retention.failed.audit", summary="The audit purge failed.")
        raise_alert("retention.failed.audit", summary="The audit purge failed.")

    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [(r.name, r.getMessage(), r.alert) for r in critical] == [
        ("slotpay.alerts", "alert.raised", "retention.failed.audit")
    ]


def test_without_alert_emails_the_admins_hear_of_it(settings: pytest.FixtureRequest) -> None:
    settings.ALERT_EMAILS = []

    raise_alert("payments.refunds_stuck", summary="1 refund pending for over an hour.")

    assert mail.outbox[0].to == ["admins@slotpay.example"]


def test_without_alert_emails_or_admins_the_groups_active_staff_hear_of_it(
    settings: pytest.FixtureRequest,
) -> None:
    settings.ALERT_EMAILS = []
    settings.ADMINS = []
    auditors, _ = Group.objects.get_or_create(name="Auditor")
    finance, _ = Group.objects.get_or_create(name="Finance")
    member = User.objects.create_user(email="fin@slotpay.example", password="x", is_staff=True)
    member.groups.add(finance)
    gone = User.objects.create_user(
        email="gone@slotpay.example", password="x", is_staff=True, is_active=False
    )
    gone.groups.add(finance)
    auditor = User.objects.create_user(email="aud@slotpay.example", password="x", is_staff=True)
    auditor.groups.add(auditors)

    raise_alert("audit.chain", summary="The audit chain does not verify.", group="Auditor")
    raise_alert("payments.refunds_stuck", summary="1 refund pending for over an hour.")
    clear_alert("audit.chain")

    assert [(m.subject.split("]")[0], m.to) for m in mail.outbox] == [
        ("[Slotpay alert", ["aud@slotpay.example"]),
        ("[Slotpay alert", ["fin@slotpay.example"]),
        ("[Slotpay recovered", ["aud@slotpay.example"]),
    ]


@pytest.mark.connections
@pytest.mark.postgres
def test_concurrent_raisers_make_one_incident_and_one_email() -> None:
    start = threading.Barrier(6)
    opened: list[bool] = []

    def raiser() -> None:
        try:
            start.wait()
            opened.append(raise_alert("webhooks.signature_failures", summary="A spike."))
        finally:
            connection.close()

    threads = [threading.Thread(target=raiser) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(opened) == [False] * 5 + [True]
    [alert] = Alert.objects.all()
    assert alert.times_seen == 6
    assert len(mail.outbox) == 1


# --- The runner ------------------------------------------------------------------------


def test_the_runner_raises_once_and_clears_once_what_a_watchdog_reports(
    only_these_watchdogs: dict[str, alerts.Check],
) -> None:
    stuck: list[Problem] = [Problem("demo.stuck", "2 things stuck.", ["Look."])]
    alerts.register_watchdog("demo", lambda: list(stuck))

    first, second = run_watchdogs(), run_watchdogs()
    stuck.clear()
    third, fourth = run_watchdogs(), run_watchdogs()

    assert (first.raised, second.raised, third.cleared, fourth.cleared) == (
        ["demo.stuck"],
        [],
        ["demo.stuck"],
        [],
    )
    assert _subjects() == ["[Slotpay alert] 2 things stuck.", "[Slotpay recovered] 2 things stuck."]


def test_the_runner_leaves_alerts_that_are_not_a_watchdogs_own(
    only_these_watchdogs: dict[str, alerts.Check],
) -> None:
    alerts.register_watchdog("retention", lambda: [])
    raise_alert("reconcile.failed", summary="Reconciliation failed.")
    raise_alert("retentionist", summary="Not under the name retention.")

    run_watchdogs()

    assert alerts.open_alerts() == ["reconcile.failed", "retentionist"]


def test_a_crashing_watchdog_raises_its_own_alert_and_the_others_still_run(
    only_these_watchdogs: dict[str, alerts.Check], caplog: pytest.LogCaptureFixture
) -> None:
    crashing = [True]

    def broken() -> list[Problem]:
        if crashing:
            raise RuntimeError("the database said no")
        return []

    alerts.register_watchdog("aaa", broken)
    alerts.register_watchdog("zzz", lambda: [("zzz", "Something is wrong.", ())])
    raise_alert("aaa.earlier", summary="Seen before the crash.")

    outcome = run_watchdogs()
    run_watchdogs()

    assert outcome.failed == ["aaa"]
    assert outcome.raised == ["watchdog.failed.aaa", "zzz"]
    # Not knowing is not "all clear": the crashed watchdog's alerts stay open.
    assert alerts.open_alerts() == ["aaa.earlier", "watchdog.failed.aaa", "zzz"]
    failures = [r for r in caplog.records if r.getMessage() == "alert.watchdog_failed"]
    assert {(r.watchdog, r.error, r.levelname) for r in failures} == {
        ("aaa", "RuntimeError", "ERROR")
    }

    crashing.clear()
    recovered = run_watchdogs()

    assert sorted(recovered.cleared) == ["aaa.earlier", "watchdog.failed.aaa"]
    assert alerts.open_alerts() == ["zzz"]
    assert len(mail.outbox) == 3 + 2  # three alerts, two recoveries


def test_a_watchdog_reporting_a_key_outside_its_name_is_a_failing_watchdog(
    only_these_watchdogs: dict[str, alerts.Check],
) -> None:
    alerts.register_watchdog("payments", lambda: [("webhooks.dead_letters", "Not mine.", ())])

    outcome = run_watchdogs()

    assert outcome.failed == ["payments"]
    assert alerts.open_alerts() == ["watchdog.failed.payments"]


# --- Keys near or past rotation -------------------------------------------------------


@pytest.fixture
def key_dates(settings: pytest.FixtureRequest) -> dict[str, date | None]:
    settings.KEY_ROTATION_DAYS = 90
    settings.KEY_ROTATION_WARNING_DAYS = 14
    settings.KEY_CREATED = dict.fromkeys(settings.ROTATED_KEYS)
    dates: dict[str, date | None] = settings.KEY_CREATED
    return dates


def test_keys_are_reported_when_due_soon_and_when_overdue_by_name_only(
    key_dates: dict[str, date | None], settings: pytest.FixtureRequest
) -> None:
    today = date(2026, 6, 30)
    key_dates["SECRET_KEY"] = date(2026, 4, 1)  # 90 days on 2026-06-30
    key_dates["STRIPE_API_KEY"] = date(2026, 3, 1)
    key_dates["BLIND_INDEX_KEY"] = date(2026, 4, 11)  # due in 10 days
    key_dates["AUDIT_CHECKPOINT_KEY"] = date(2026, 4, 20)  # 19 days left: fine

    problems = alerts.keys_due_for_rotation(today=today)

    assert [(p.key, p.summary.split(" (")[0]) for p in problems] == [
        ("keys.rotation.SECRET_KEY", "SECRET_KEY rotation due today"),
        ("keys.rotation.BLIND_INDEX_KEY", "BLIND_INDEX_KEY rotation due in 10 days"),
        ("keys.rotation.STRIPE_API_KEY", "STRIPE_API_KEY rotation overdue by 31 days"),
    ]
    text = " ".join([p.summary for p in problems] + [line for p in problems for line in p.lines])
    assert str(settings.SECRET_KEY) not in text
    assert str(settings.STRIPE_API_KEY) not in text


def test_a_key_without_a_creation_date_is_reported_in_production_only(
    key_dates: dict[str, date | None], settings: pytest.FixtureRequest
) -> None:
    assert alerts.keys_due_for_rotation(today=date(2026, 6, 30)) == []

    settings.ENVIRONMENT = "production"
    problems = alerts.keys_due_for_rotation(today=date(2026, 6, 30))

    assert [p.key for p in problems] == [f"keys.rotation.{n}" for n in settings.ROTATED_KEYS]
    assert "Set SECRET_KEY_CREATED" in problems[0].lines[0]


def test_an_overdue_key_is_one_alert_until_it_is_rotated(
    key_dates: dict[str, date | None], only_these_watchdogs: dict[str, alerts.Check]
) -> None:
    alerts.register_watchdog("keys.rotation", alerts.keys_due_for_rotation)
    key_dates["CALENDLY_API_TOKEN"] = date(2020, 1, 1)

    run_watchdogs()
    run_watchdogs()
    key_dates["CALENDLY_API_TOKEN"] = date.today()  # rotated  # noqa: DTZ011 (a date setting)
    run_watchdogs()

    assert [m.subject.split(" rotation")[0] for m in mail.outbox] == [
        "[Slotpay alert] CALENDLY_API_TOKEN",
        "[Slotpay recovered] CALENDLY_API_TOKEN",
    ]
