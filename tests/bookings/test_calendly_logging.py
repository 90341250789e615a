"""Outgoing calls are logged by the token's label: never the token, never an email."""

import logging

import pytest

from bookings.calendly import NotFound
from config.outgoing import key_label

from .helpers import INVITEE_EMAIL, book

pytestmark = pytest.mark.django_db(transaction=True)


def _logged(caplog) -> str:
    return "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)


def test_calls_are_logged_with_the_token_label_only(
    calendly, event_type, live_server, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    invitee = book(live_server, event_type)

    calendly.get_invitee(invitee.scheduled_event.uuid, invitee.uuid)
    calendly.request_invitee_data_deletion([INVITEE_EMAIL])
    with pytest.raises(NotFound):
        calendly.get_scheduled_event("AAAAAAAAAAAAAAAA")

    calls = [r for r in caplog.records if r.name == "slotpay.outgoing"]
    assert {(r.operation, r.status) for r in calls} >= {
        ("invitees.get", 200),
        ("data_compliance.delete_invitees", 202),
        ("scheduled_events.get", 404),
    }
    assert all(r.provider == "calendly" for r in calls)
    assert {r.key for r in calls} == {key_label(settings.CALENDLY_API_TOKEN, kind="pat")}
    text = _logged(caplog)
    assert settings.CALENDLY_API_TOKEN not in text
    assert INVITEE_EMAIL not in text


def test_results_and_errors_do_not_show_personal_data(calendly, event_type, live_server):
    invitee = book(live_server, event_type)

    got = calendly.get_invitee(invitee.scheduled_event.uuid, invitee.uuid)

    assert INVITEE_EMAIL not in repr(got)
    assert "Clara" not in repr(got)
    assert "Pricing" not in repr(got)
