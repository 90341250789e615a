"""The outside review's findings on the back-office's data-subject requests: a wrong
correction is a clear error (never a 500), the dates and the handler cannot be
bent, a staff member's data is not a Privacy member's to export, and every time
shown says its zone."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts import dsr
from accounts.models import User
from audit.models import AuditEntry
from tests.accounts.test_dsr_admin import LIST, PRIVACY, file, signed_in, staff
from tests.bookings.world import World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CLARA = "clara@client.example"


@pytest.fixture
def privacy(world: World) -> Client:
    return signed_in(staff("pia@slotpay.example", *PRIVACY))


def said(answer: object) -> str:
    return " ".join(str(m) for m in get_messages(answer.wsgi_request))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("time_zone", "Mars/Olympus", "Not an IANA time zone"),
        ("time_zone", "../../etc/passwd", "Not an IANA time zone"),
        ("time_zone", "x" * 100_000, "at most 64 characters"),
        ("name", "Clara\x00Client", "Null characters are not allowed"),
        ("name", "C" * 100_000, "at most 200 characters"),
        ("email", "clara@@client", "Enter a valid email address"),
        ("email", "clara\x00@client.example", "Null characters are not allowed"),
        ("email", "otto@other.example", "Another account has this email address"),
        ("email", "OTTO@other.example ", "Another account has this email address"),
    ],
)
def test_a_wrong_correction_is_a_clear_error_and_nothing_is_saved(
    world: World, privacy: Client, field: str, value: str, error: str
) -> None:
    world.person("otto@other.example", "Otto Other")
    request = file(privacy, CLARA, "rectification")
    posted = {
        "name": "Clara Klient",
        "email": CLARA,
        "time_zone": "Europe/Paris",
        "reason": "Letter of 3 May",
        field: value,
    }

    answer = privacy.post(f"{LIST}{request.pk}/rectify/", posted)

    assert answer.status_code == 302
    assert error in said(answer)
    assert "Not corrected." in said(answer)
    user = User.objects.get(pk=world.client_user.pk)
    assert (user.name, user.email, user.time_zone) == ("Clara Client", CLARA, "")
    assert not AuditEntry.objects.filter(action="accounts.user.rectified").exists()
    page = privacy.get(f"{LIST}{request.pk}/change/")
    assert page.status_code == 200


def test_the_service_refuses_a_bad_value_too(world: World, privacy: Client) -> None:
    """Behind the form, the service checks each value as the model does."""
    request = file(privacy, CLARA, "rectification")
    officer = User.objects.get_by_email("pia@slotpay.example")
    for changes in (
        {"time_zone": "Mars/Olympus"},
        {"name": "C" * 100_000},
        {"name": "a\x00b"},
        {"email": "not an email"},
    ):
        with pytest.raises(dsr.DsrRefused):
            dsr.subject_rectify(request=request, actor=officer, changes=changes, reason="Letter")
    assert User.objects.get(pk=world.client_user.pk).name == "Clara Client"
