"""list_event_types(): every page, following pagination.next_page."""

import pytest

from bookings.calendly import InvalidRequest
from config import outgoing
from sandbox.calendly_sandbox.models import EventType

pytestmark = pytest.mark.django_db(transaction=True)


def test_event_types_are_listed_across_pages(calendly, event_type):
    for n in range(4):
        EventType.objects.create(host=event_type.host, name=f"Extra {n}", slug=f"extra-{n}")
    before = outgoing.calls("calendly", "event_types.list")

    user = calendly.current_user()
    listed = calendly.list_event_types(user.uri, count=2)

    assert [t.slug for t in listed] == ["30min", "extra-0", "extra-1", "extra-2", "extra-3"]
    assert outgoing.calls("calendly", "event_types.list") - before == 3  # 2 + 2 + 1
    first = listed[0]
    assert first.uuid == event_type.uuid
    assert first.duration == 30
    assert first.active is True
    assert first.scheduling_url.endswith("/sandbox/calendly/ada/30min/")


def test_only_the_users_event_types_are_listed(calendly, event_type):
    from sandbox.calendly_sandbox import services

    services.host_with_event_type_create(
        host_name="Bo",
        host_email="bo@example.com",
        host_slug="bo",
        host_timezone="UTC",
        event_name="Other",
        event_slug="other",
        duration=15,
    )

    listed = calendly.list_event_types(calendly.current_user().uri)

    assert [t.name for t in listed] == ["30 Minute Meeting"]


def test_an_unknown_user_is_an_invalid_request(calendly, event_type, api_base):
    with pytest.raises(InvalidRequest) as caught:
        calendly.list_event_types(f"{api_base}/users/NOSUCHUSER")

    assert caught.value.status == 400
    assert caught.value.parameters == ("user",)
