"""Refund policies: tiers of notice before the start, each with the share refunded.

A policy is stored on the event type as JSON, newest tier list plus a version that
the client's consent records::

    [{"min_notice_hours": 48, "percent": 100},
     {"min_notice_hours": 24, "percent": 50},
     {"min_notice_hours": 0, "percent": 0}]

"Notice" is the time from the cancellation to the booking's start, both in UTC on
the server's clock (never the client's). The first tier whose notice is met applies;
under every tier, or at or after the start, nothing is refunded. Amounts are integer
minor units and round down, so a refund never exceeds the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class Tier:
    min_notice_hours: int
    percent: int

    @property
    def min_notice(self) -> timedelta:
        return timedelta(hours=self.min_notice_hours)


@dataclass(frozen=True)
class Deadline:
    """Until ``until`` (in the client's zone) a cancellation refunds ``percent``."""

    until: datetime
    percent: int


@dataclass(frozen=True)
class RefundPolicy:
    tiers: tuple[Tier, ...]  # most notice first

    @classmethod
    def from_json(cls, data: Any) -> RefundPolicy:
        """Validate stored or submitted tiers; raises ValidationError naming the fault."""
        if not isinstance(data, list) or not data:
            raise ValidationError("A refund policy needs at least one tier.")
        tiers = []
        for position, item in enumerate(data, start=1):
            if not isinstance(item, Mapping) or set(item) != {"min_notice_hours", "percent"}:
                raise ValidationError(
                    f"Tier {position} must have exactly min_notice_hours and percent."
                )
            hours, percent = item["min_notice_hours"], item["percent"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (hours, percent)):
                raise ValidationError(f"Tier {position}: hours and percent must be integers.")
            if hours < 0 or not 0 <= percent <= 100:
                raise ValidationError(
                    f"Tier {position}: hours must be 0 or more and percent 0 to 100."
                )
            tiers.append(Tier(hours, percent))
        tiers.sort(key=lambda tier: tier.min_notice_hours, reverse=True)
        hours = [tier.min_notice_hours for tier in tiers]
        if len(set(hours)) != len(hours):
            raise ValidationError("Two tiers have the same notice.")
        percents = [tier.percent for tier in tiers]
        if percents != sorted(percents, reverse=True):
            raise ValidationError("Less notice must never refund more.")
        return cls(tuple(tiers))

    def to_json(self) -> list[dict[str, int]]:
        return [{"min_notice_hours": t.min_notice_hours, "percent": t.percent} for t in self.tiers]

    def percent_at(self, start: datetime, when: datetime) -> int:
        """The share refunded for a cancellation at ``when`` of a booking at ``start``."""
        if start.tzinfo is None or when.tzinfo is None:
            raise ValueError("refund times must be timezone-aware")
        notice = start - when
        if notice <= timedelta(0):
            return 0
        for tier in self.tiers:
            if notice >= tier.min_notice:
                return tier.percent
        return 0

    def refund_amount(self, paid: int, start: datetime, when: datetime) -> int:
        """Minor units refunded of ``paid``, rounded down."""
        if paid < 0:
            raise ValueError("a paid amount cannot be negative")
        return paid * self.percent_at(start, when) // 100

    def deadlines(self, start: datetime, time_zone: str) -> list[Deadline]:
        """The policy as dates the client can read, in their own time zone."""
        zone = ZoneInfo(time_zone)
        return [
            Deadline(until=(start - tier.min_notice).astimezone(zone), percent=tier.percent)
            for tier in self.tiers
        ]


DEFAULT_TIERS: list[dict[str, int]] = [
    {"min_notice_hours": 48, "percent": 100},
    {"min_notice_hours": 24, "percent": 50},
    {"min_notice_hours": 0, "percent": 0},
]


def validate_policy(value: Iterable[Any]) -> None:
    """Model-field validator."""
    RefundPolicy.from_json(value)
