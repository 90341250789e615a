"""Who sees what is decided in bookings/selectors.py alone: every read takes the person
asking (the pages and the API through them: test_isolation.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from bookings.selectors import (
    booking_get_for_client,
    booking_list_visible_to,
    builder_bookings_for,
)
from tests.bookings.test_isolation import cast

__all__ = ["cast"]

pytestmark = pytest.mark.django_db


def test_a_client_sees_their_own_bookings_and_a_builder_its_own(cast) -> None:
    assert list(booking_list_visible_to(user=cast["client_a"])) == [cast["booking_a"]]
    assert list(booking_list_visible_to(user=cast["builder_b"])) == [cast["booking_b"]]


def test_only_its_client_gets_a_booking_to_pay_or_cancel(cast) -> None:
    reference = cast["booking_a"].reference
    assert booking_get_for_client(user=cast["client_a"], reference=reference) == cast["booking_a"]
    for someone_else in ("client_b", "builder_a"):
        with pytest.raises(Http404):
            booking_get_for_client(user=cast[someone_else], reference=reference)


def test_a_builders_bookings_are_for_its_members_only(cast) -> None:
    theirs = builder_bookings_for(user=cast["builder_a"])
    assert list(theirs.bookings) == [cast["booking_a"]]
    assert [builder.slug for builder in theirs.builders] == ["studio-a"]
    with pytest.raises(Http404):
        builder_bookings_for(user=cast["client_a"])


def test_nobody_signed_in_sees_no_booking(cast) -> None:
    nobody = AnonymousUser()
    assert not booking_list_visible_to(user=nobody).exists()
    with pytest.raises(Http404):
        booking_get_for_client(user=nobody, reference=cast["booking_a"].reference)
    with pytest.raises(Http404):
        builder_bookings_for(user=nobody)
