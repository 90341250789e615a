"""Which time zone a person reads times in: one rule for pages, emails, the admin and the API.

The rule (:func:`viewer_zone`): the person's own ``time_zone`` when they chose one;
otherwise, for a client reading about a booking, the zone they picked on Calendly;
for a builder's member on the builder's pages, the builder's zone; anywhere else
(the back-office) UTC. Whatever shows a time also names the zone it is in.

``core`` imports no app of ours, so users, bookings and builders are taken duck-typed:
``user.time_zone``, ``booking.invitee_time_zone``, ``builder.time_zone``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

UTC = ZoneInfo("UTC")


def zone_named(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``; UTC for a blank or unknown one, so that a zone dropped
    from the system's database (or a stray value from a provider) never breaks a page."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def viewer_zone(user: Any, *, booking: Any = None, builder: Any = None) -> ZoneInfo:
    """The zone ``user`` reads times in.

    Pass ``booking`` only when ``user`` is that booking's client (or, for an email, its
    recipient: ``user`` may then be None), and ``builder`` only on that builder's own
    pages for one of its members.
    """
    own = getattr(user, "time_zone", "") if getattr(user, "is_authenticated", False) else ""
    if own:
        return zone_named(own)
    if booking is not None:
        return zone_named(booking.invitee_time_zone)
    if builder is not None:
        return zone_named(builder.time_zone)
    return UTC


def zoned(value: datetime | None) -> str:
    """``2026-11-30 19:11 Asia/Tokyo``: ``value`` in the zone now active (the viewer's,
    activated by TimeZoneMiddleware; UTC in the back-office unless they chose one),
    named. The ``zoned`` template filter (``{% load zones %}``) is this."""
    if value is None:
        return "—"
    zone = timezone.get_current_timezone()
    return f"{timezone.localtime(value, zone):%Y-%m-%d %H:%M} {zone}"
