"""A slot is booked once: it disappears, a second booking is refused, even concurrently."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import Invitee, ScheduledEvent
from sandbox.calendly_sandbox.resources import Urls

from .conftest import book, schedule_url


def test_a_booked_slot_disappears_and_cannot_be_booked_again(client, event_type):
    start = services.open_slots(event_type)[0]
    assert book(client, event_type, start=start).status_code == 302

    page = client.get(schedule_url(event_type)).content.decode()
    again = book(client, event_type, start=start, email="second@client.example")

    assert f'value="{start.isoformat()}"' not in page
    assert again.status_code == 409
    assert "no longer available" in again.content.decode()
    assert ScheduledEvent.objects.count() == 1


def test_another_event_type_of_the_host_cannot_overlap(client, event_type):
    hour = services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="60 Minute Meeting",
        event_slug="60min",
        duration=60,
    )
    first_hour = services.open_slots(hour)[0]
    book(client, hour, start=first_hour)

    half_hours = services.open_slots(event_type)

    assert first_hour not in half_hours
    assert first_hour.replace(minute=30) not in half_hours


def test_the_database_refuses_two_active_events_in_one_slot(event_type):
    start = services.open_slots(event_type)[0]
    values = {
        "event_type": event_type,
        "host": event_type.host,
        "name": "x",
        "start_time": start,
        # Not start.replace(minute=30): a slot may itself start at half past.
        "end_time": start + timedelta(minutes=30),
    }
    ScheduledEvent.objects.create(**values)

    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledEvent.objects.create(**values)


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_submit_books_once(event_type):
    start = services.open_slots(event_type)[0]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            services.invitee_book(
                event_type=event_type,
                start=start,
                name=f"Racer {n}",
                email=f"racer{n}@client.example",
                invitee_timezone="UTC",
                urls=Urls(site="http://testserver"),
            )
            outcomes.append("booked")
        except services.SlotTakenError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["booked", "refused"]
    assert Invitee.objects.count() == 1
