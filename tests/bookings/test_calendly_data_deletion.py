"""request_invitee_data_deletion(): Calendly erases the invitees named by email."""

import pytest

from bookings.calendly import InvalidRequest
from sandbox.calendly_sandbox.models import DataDeletionRequest, Invitee

from .helpers import INVITEE_EMAIL, book

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_invitees_personal_data_is_erased(calendly, event_type, live_server):
    invitee = book(live_server, event_type)

    calendly.request_invitee_data_deletion([INVITEE_EMAIL.upper(), "nobody@example.com"])

    invitee.refresh_from_db()
    assert invitee.email != INVITEE_EMAIL
    assert invitee.name == "Deleted invitee"
    assert invitee.questions_and_answers == []
    request = DataDeletionRequest.objects.get()
    assert (request.email_count, request.invitees_erased) == (2, 1)
    assert not Invitee.objects.filter(email=INVITEE_EMAIL).exists()


def test_no_emails_is_refused_before_calling(calendly, transactional_db):
    with pytest.raises(InvalidRequest):
        calendly.request_invitee_data_deletion([])
