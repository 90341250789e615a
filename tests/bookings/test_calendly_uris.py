"""UUIDs come out of Calendly URIs whatever their host and with or without /api/v2/."""

import pytest

from bookings.calendly import uuid_from_uri


@pytest.mark.parametrize(
    ("uri", "kind", "expected"),
    [
        ("https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2", None, "GBGBDCAADAEDCRZ2"),
        (
            "https://api.calendly.com/api/v2/scheduled_events/AAAA1111",
            "scheduled_events",
            "AAAA1111",
        ),
        (
            "https://calendly.com/api/v2/scheduled_events/EV1/invitees/INV2",
            "scheduled_events",
            "EV1",
        ),
        ("https://api.calendly.com/scheduled_events/EV1/invitees/INV2", "invitees", "INV2"),
        ("https://api.calendly.com/scheduled_events/EV1/invitees/INV2", None, "INV2"),
        (
            "http://localhost:8000/sandbox/calendly/api/users/6ee96ed4-83a3-4966-a278-cd19b3c02e09",
            "users",
            "6ee96ed4-83a3-4966-a278-cd19b3c02e09",
        ),
        ("https://api.calendly.com/invitee_no_shows/NS1", "invitee_no_shows", "NS1"),
        ("AAAAAAAAAAAAAAAA", "invitees", "AAAAAAAAAAAAAAAA"),
        ("https://api.calendly.com/scheduled_events/EV1/", None, "EV1"),
    ],
)
def test_uuid_from_uri(uri, kind, expected):
    assert uuid_from_uri(uri, kind) == expected


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://api.calendly.com/users/AAAA", "scheduled_events"),
        ("", None),
        ("../../etc/passwd", None),
        ("https://api.calendly.com/", None),
    ],
)
def test_not_a_uri_of_that_kind(uri, kind):
    with pytest.raises(ValueError, match=r"not a Calendly|unknown Calendly"):
        uuid_from_uri(uri, kind)
