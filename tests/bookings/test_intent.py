"""The booking intent in utm_content: ours, untampered, fresh when the slot was booked."""

from datetime import timedelta

import pytest
from django.core import signing

from bookings import services
from tests.bookings.factories import make_event_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def consent(owner, stranger):
    return services.consent_give(
        user=stranger, event_type=make_event_type(owner.builders.get()), ip="192.0.2.1"
    )


def test_a_fresh_intent_names_the_client_the_event_type_and_the_consent(consent) -> None:
    token = services.issue_intent(consent)
    intent = services.read_intent(token, at=consent.consented_at + timedelta(minutes=5))
    assert (intent.user_id, intent.event_type_id, intent.consent_id) == (
        consent.user_id,
        consent.event_type_id,
        consent.pk,
    )
    assert "stranger" not in token
    assert "@" not in token


def test_a_tampered_foreign_or_stale_intent_is_no_intent(consent, settings) -> None:
    token = services.issue_intent(consent)
    booked = consent.consented_at + timedelta(minutes=1)
    assert services.read_intent(token[:-2] + "xx", at=booked) is None
    assert services.read_intent("intent-123", at=booked) is None
    assert services.read_intent(None, at=booked) is None
    other_salt = signing.dumps([1, 2, 3, 4], salt="something.else", compress=True)
    assert services.read_intent(other_salt, at=booked) is None
    late = consent.consented_at + timedelta(minutes=settings.BOOKING_INTENT_MAX_AGE_MINUTES + 1)
    assert services.read_intent(token, at=late) is None
    # A webhook processed hours later still links: the time that counts is Calendly's.
    assert services.read_intent(token, at=booked) is not None


def test_an_intent_links_once_and_only_to_its_event_type(consent, owner) -> None:
    intent = services.read_intent(services.issue_intent(consent), at=consent.consented_at)
    assert services._linked_consent(intent, consent.event_type) == consent
    other = make_event_type(owner.builders.get(), calendly_event_type_uri="https://x.example/2")
    with pytest.raises(services.NotLinked, match="another session"):
        services._linked_consent(intent, other)
    consent.user.is_active = False
    consent.user.save()
    with pytest.raises(services.NotLinked, match="cannot book"):
        services._linked_consent(intent, consent.event_type)


def test_an_intent_links_only_for_its_clients_email(consent) -> None:
    intent = services.read_intent(services.issue_intent(consent), at=consent.consented_at)

    assert services._linked_consent(intent, consent.event_type, email=" Stranger@Example.NET")
    with pytest.raises(services.NotLinked, match="other than the client"):
        services._linked_consent(intent, consent.event_type, email="someone@else.example")
