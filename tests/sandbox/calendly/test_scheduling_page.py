"""The scheduling page: open slots in the host's time zone, prefill, tracking kept."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from sandbox.calendly_sandbox import services

from .conftest import schedule_url


def test_slots_are_working_hours_on_weekdays_in_the_hosts_time_zone(event_type):
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 3, 27, 16, 10, tzinfo=berlin)  # a Friday, before a DST change

    slots = services.open_slots(event_type, now=now)

    local = [s.astimezone(berlin) for s in slots]
    assert local[0] == datetime(2026, 3, 27, 16, 30, tzinfo=berlin)
    assert all(s.weekday() < 5 for s in local)
    assert {(s.hour, s.minute) for s in local} == {(h, m) for h in range(9, 17) for m in (0, 30)}
    assert max(slots) < now + timedelta(days=14)
    monday = [s for s in local if s.date() == date(2026, 3, 30)]
    assert len(monday) == 16
    assert monday[0].utcoffset() == timedelta(hours=2)  # summer time


def test_the_page_lists_slots_and_prefills_from_the_query(client, event_type):
    response = client.get(
        schedule_url(event_type),
        {
            "name": "Clara Client",
            "email": "clara@client.example",
            "utm_source": "slotpay",
            "utm_content": "signed.intent-token",
            "a1": "Pricing",
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    first = services.open_slots(event_type)[0]
    assert f'value="{first.isoformat()}"' in html
    assert 'value="Clara Client"' in html
    assert 'value="clara@client.example"' in html
    assert 'type="hidden" name="utm_content" value="signed.intent-token"' in html
    assert 'type="hidden" name="utm_source" value="slotpay"' in html
    assert "What should we discuss?" in html
    assert "Pricing</textarea>" in html
    local = first.astimezone(ZoneInfo("Europe/Berlin"))
    assert f"> {local:%H:%M}</label>" in html  # shown in the host's time
    assert 'value="Europe/Berlin"' in html  # the host's zone until the invitee picks theirs


def test_the_pages_carry_no_inline_script_or_style(client, event_type):
    for url in (schedule_url(event_type), "/sandbox/calendly/", "/sandbox/calendly/ada/"):
        html = client.get(url).content.decode()
        assert "<script" not in html
        assert "style=" not in html
        assert "<style" not in html
        assert "css/sandbox-calendly.css" in html


def test_an_unknown_or_inactive_event_type_is_not_found(client, event_type):
    event_type.active = False
    event_type.save()

    assert client.get(schedule_url(event_type)).status_code == 404
    assert client.get("/sandbox/calendly/ada/nope/").status_code == 404


def test_past_slots_are_never_offered(event_type):
    now = timezone.now()

    assert services.open_slots(event_type, now=now)
    assert all(slot > now for slot in services.open_slots(event_type, now=now))
