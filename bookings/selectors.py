"""Every read the pages and the API make, each for the person asking: who sees what is
decided here and nowhere else.

A client sees their own bookings; a builder's members see that builder's; staff use
the back-office, not these. Someone else's booking is the same 404 as one that does not
exist. What is on offer (builders, their sessions) anyone may see, signed in or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias
from uuid import UUID

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import Builder, BuilderMembership, User
from bookings.models import Booking, EventType
from payments.models import Payment

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

# Whoever is asking: an account, or nobody signed in (who has no bookings).
Viewer: TypeAlias = "User | AnonymousUser"


# --- What is on offer ------------------------------------------------------------------------


def builder_list_on_offer(*, user: Viewer) -> QuerySet[Builder]:
    """Active builders with at least one active session."""
    return Builder.objects.filter(is_active=True, event_types__active=True).distinct()


def builder_get_on_offer(*, user: Viewer, slug: str) -> Builder:
    """An active builder by its slug; Http404 otherwise."""
    return get_object_or_404(Builder, slug=slug, is_active=True)


def event_type_list_on_offer(
    *, user: Viewer, builder: Builder | None = None
) -> QuerySet[EventType]:
    """Active sessions of active builders (of ``builder`` only, if given)."""
    offered = EventType.objects.filter(active=True, builder__is_active=True)
    if builder is not None:
        offered = offered.filter(builder=builder)
    return offered.select_related("builder")


def event_type_get_on_offer(*, user: Viewer, pk: int) -> EventType:
    """An active session of an active builder; Http404 otherwise."""
    return get_object_or_404(event_type_list_on_offer(user=user), pk=pk)


# --- Bookings --------------------------------------------------------------------------------


def _payments() -> Prefetch:
    return Prefetch("payments", queryset=Payment.objects.order_by("-created_at"))


def booking_list_visible_to(*, user: Viewer) -> QuerySet[Booking]:
    """The bookings ``user`` may see: their own as a client, and those of the builders
    they belong to."""
    if not user.is_authenticated:
        return Booking.objects.none()
    # The builders first (a person belongs to a handful), then one filter on the
    # booking's own columns: each side is an index scan (client, builder) that
    # PostgreSQL ORs as bitmaps. An OR across the memberships join instead needs a
    # DISTINCT over every column, a sort of every row the builder has.
    builders = list(
        BuilderMembership.objects.filter(user=user).values_list("builder_id", flat=True)
    )
    if not builders:
        return Booking.objects.filter(client=user)
    return Booking.objects.filter(Q(client=user) | Q(builder_id__in=builders))


def booking_list_for_client(*, user: Viewer) -> QuerySet[Booking]:
    """``user``'s own bookings as a client, with their payments (newest first) and
    refunds."""
    if not user.is_authenticated:
        return Booking.objects.none()
    return (
        Booking.objects.filter(client=user)
        .select_related("event_type", "builder")
        .prefetch_related(_payments(), "payments__refunds")
    )


def booking_get_for_client(
    *, user: Viewer, reference: UUID | str, with_payments: bool = False
) -> Booking:
    """One of ``user``'s own bookings as a client (only the client may pay or cancel
    it); Http404 for anyone else's. ``with_payments``: its payments (newest first) and
    refunds come with it."""
    if not user.is_authenticated:
        raise Http404("no such booking")
    own = Booking.objects.filter(client=user).select_related("event_type", "builder")
    if with_payments:
        own = own.prefetch_related(_payments(), "payments__refunds")
    return get_object_or_404(own, reference=reference)


@dataclass(frozen=True)
class BuilderBookings:
    builders: QuerySet[Builder]
    bookings: QuerySet[Booking]


def builder_bookings_for(*, user: Viewer) -> BuilderBookings:
    """The builders ``user`` belongs to and their bookings, with payments (newest first)
    and refunds; Http404 for someone who belongs to no builder.

    The invitee's name and email come with each row (the builder's members may see
    who booked: docs/data-inventory.md); the answers stay out. Slice it (a page):
    every row loaded is a row decrypted."""
    if not user.is_authenticated:
        raise Http404("not a builder")
    memberships = Builder.objects.filter(memberships__user=user)
    if not memberships.exists():
        raise Http404("not a builder")
    bookings = (
        Booking.objects.filter(builder__in=memberships)
        .defer("answers")
        .select_related("event_type", "builder")
        .prefetch_related(_payments(), "payments__refunds")
    )
    return BuilderBookings(builders=memberships, bookings=bookings)


def booking_get_for_builder(*, user: Viewer, reference: UUID | str) -> Booking:
    """A booking of a builder ``user`` is a member of (to mark a no-show or cancel it
    as the provider); Http404 for any other, the client's own included."""
    if not user.is_authenticated:
        raise Http404("no such booking")
    theirs = Booking.objects.filter(
        builder__in=Builder.objects.filter(memberships__user=user)
    ).select_related("event_type", "builder")
    return get_object_or_404(theirs, reference=reference)
