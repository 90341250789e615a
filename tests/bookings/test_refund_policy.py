"""Refund policy tiers: validation, the share at a given notice, amounts, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from bookings.policy import DEFAULT_TIERS, RefundPolicy

START = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
POLICY = RefundPolicy.from_json(DEFAULT_TIERS)


@pytest.mark.parametrize(
    ("notice", "percent"),
    [
        (timedelta(days=10), 100),
        (timedelta(hours=48), 100),  # exactly 48 h is still the full tier
        (timedelta(hours=48) - timedelta(seconds=1), 50),
        (timedelta(hours=24), 50),
        (timedelta(hours=23, minutes=59), 0),
        (timedelta(minutes=1), 0),
        (timedelta(0), 0),
        (-timedelta(hours=1), 0),  # after the start
    ],
)
def test_the_share_depends_on_the_notice(notice: timedelta, percent: int) -> None:
    assert POLICY.percent_at(START, START - notice) == percent


def test_amounts_are_minor_units_rounded_down() -> None:
    half = START - timedelta(hours=30)
    assert POLICY.refund_amount(5000, START, half) == 2500
    assert POLICY.refund_amount(4999, START, half) == 2499  # never a cent more
    assert POLICY.refund_amount(333, START, half) == 166  # JPY: 333 yen, no decimals
    assert POLICY.refund_amount(12345, START, START - timedelta(days=3)) == 12345


def test_tiers_may_come_in_any_order_and_without_a_zero_tier() -> None:
    policy = RefundPolicy.from_json(
        [{"min_notice_hours": 24, "percent": 50}, {"min_notice_hours": 72, "percent": 100}]
    )
    assert [t.min_notice_hours for t in policy.tiers] == [72, 24]
    assert policy.percent_at(START, START - timedelta(hours=10)) == 0


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.percent_at(START.replace(tzinfo=None), START)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "at least one tier"),
        ("100%", "at least one tier"),
        ([{"min_notice_hours": 48}], "exactly"),
        ([{"min_notice_hours": 48, "percent": 100, "extra": 1}], "exactly"),
        ([{"min_notice_hours": "48", "percent": 100}], "integers"),
        ([{"min_notice_hours": 48, "percent": True}], "integers"),
        ([{"min_notice_hours": -1, "percent": 100}], "0 or more"),
        ([{"min_notice_hours": 48, "percent": 101}], "0 to 100"),
        (
            [{"min_notice_hours": 48, "percent": 100}, {"min_notice_hours": 48, "percent": 50}],
            "same notice",
        ),
        (
            [{"min_notice_hours": 48, "percent": 50}, {"min_notice_hours": 24, "percent": 100}],
            "never refund more",
        ),
    ],
)
def test_invalid_policies_are_refused_with_a_reason(tiers, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RefundPolicy.from_json(tiers)


def test_deadlines_are_shown_in_the_clients_time_zone() -> None:
    deadlines = POLICY.deadlines(START, "America/New_York")
    assert [(d.until.isoformat(), d.percent) for d in deadlines] == [
        ("2026-12-08T10:00:00-05:00", 100),
        ("2026-12-09T10:00:00-05:00", 50),
        ("2026-12-10T10:00:00-05:00", 0),
    ]


def test_round_trip_to_json() -> None:
    assert RefundPolicy.from_json(POLICY.to_json()) == POLICY
    assert POLICY.to_json() == DEFAULT_TIERS
