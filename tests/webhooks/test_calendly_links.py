"""A signed Calendly event whose invitee link is garbage reaches the real handler (the
envelope checks only its last segment) and ends ignored, with the reason, instead of
being retried ten times: asking Calendly again cannot make the link valid."""

from __future__ import annotations

import pytest

from tests.webhooks.conftest import Sender, calendly_event
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "uri",
    [
        "https://api.calendly.com/scheduled_events/AAAA\u0000BBBB/invitees/CCCCDDDDEEEEFFFF",
        "https://api.calendly.com/scheduled_events/../invitees/CCCCDDDDEEEEFFFF",
        "https://api.calendly.com/users/AAAABBBBCCCCDDDD/invitees/CCCCDDDDEEEEFFFF",
    ],
)
def test_a_garbage_invitee_link_is_ignored_not_retried(calendly_sender: Sender, uri: str) -> None:
    data = calendly_event("invitee.created")
    data["payload"]["uri"] = uri
    assert calendly_sender.post(data).status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookEvent.Status.IGNORED, 1)
    assert "not a Calendly scheduled_events URI" in event.last_error
