"""Calendly's error answers become our exceptions, with its title and message."""

import pytest

from bookings.calendly import CalendlyError, InvalidRequest, NotFound, Unauthorized

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_unknown_event_is_not_found(calendly, event_type):
    with pytest.raises(NotFound) as caught:
        calendly.get_scheduled_event("AAAAAAAAAAAAAAAA")

    assert caught.value.status == 404
    assert caught.value.title == "Resource Not Found"
    assert caught.value.message
    assert isinstance(caught.value, CalendlyError)


def test_an_invitee_of_another_event_is_not_found(calendly, event_type, live_server):
    from .helpers import book

    invitee = book(live_server, event_type)

    with pytest.raises(NotFound):
        calendly.get_invitee("BBBBBBBBBBBBBBBB", invitee.uuid)


def test_a_wrong_token_is_unauthorized(make_client, api_base, event_type):
    with pytest.raises(Unauthorized) as caught:
        make_client(token="not-the-sandbox-token").current_user()

    assert caught.value.status == 401
    assert caught.value.title == "Unauthenticated"


def test_a_pagination_link_to_another_host_is_not_followed(calendly):
    with pytest.raises(InvalidRequest):
        calendly._url("https://evil.example/api/event_types?page_token=x")


def test_a_non_uri_is_refused_before_calling(calendly):
    with pytest.raises(ValueError, match="scheduled_events"):
        calendly.get_scheduled_event("https://calendly.com/users/AAAA")
