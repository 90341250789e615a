"""Signing in by email, in any letter case, through the real login page."""

import pytest
from axes.models import AccessAttempt

from core.encryption import blind_index
from tests.conftest import PASSWORD


@pytest.mark.parametrize("typed", ["clerk@example.com", "CLERK@EXAMPLE.COM", "Clerk@Example.Com"])
def test_staff_signs_in_with_email_in_any_case(client, clerk, typed):

    response = client.post(
        "/admin/login/", {"username": typed, "password": PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    ("is_staff", "next_page", "lands_on"),
    [
        (True, "", "/admin/"),
        (True, "https://evil.example/", "/admin/"),
        (True, "/bookings/", "/bookings/"),
        (False, "", "/bookings/"),
        (False, "https://evil.example/", "/bookings/"),
    ],
)
def test_the_site_sign_in_lands_staff_in_the_back_office_without_a_safe_next(
    client, clerk, is_staff, next_page, lands_on
):
    clerk.is_staff = is_staff
    clerk.save()

    response = client.post(
        "/accounts/login/",
        {"username": "clerk@example.com", "password": PASSWORD, "next": next_page},
    )

    assert (response.status_code, response["Location"]) == (302, lands_on)


def test_wrong_password_is_refused_without_saying_why(client, clerk):

    response = client.post("/admin/login/", {"username": "clerk@example.com", "password": "nope"})

    assert response.status_code == 200
    assert b"Please enter the email and password of a staff account." in response.content
    assert b"case-sensitive" not in response.content  # an email is not
    assert "_auth_user_id" not in client.session


def test_login_form_accepts_a_long_address(client, db):
    response = client.get("/admin/login/")

    assert b'maxlength="254"' in response.content
    assert b'type="email"' in response.content


def test_repeated_failures_lock_out_and_store_no_email(client, clerk, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "clerk@example.com", "password": "nope"})

    locked = client.post("/admin/login/", {"username": "clerk@example.com", "password": PASSWORD})

    assert locked.status_code == 429
    attempt = AccessAttempt.objects.get()
    assert attempt.username == blind_index("clerk@example.com")
    assert "username=" in attempt.post_data
    assert "example.com" not in attempt.get_data + attempt.post_data
