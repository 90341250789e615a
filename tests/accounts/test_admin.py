"""The back-office finds people by exact email through the blind index."""

import pytest

from accounts.models import Builder, User
from tests.conftest import PASSWORD


@pytest.fixture
def signed_in(client, staff):
    client.force_login(staff)
    return client


@pytest.mark.parametrize("typed", ["owner@example.com", "OWNER@EXAMPLE.COM"])
def test_user_search_by_exact_email(signed_in, owner, stranger, typed):
    response = signed_in.get("/admin/accounts/user/", {"q": typed})

    assert list(response.context["cl"].result_list) == [owner]


def test_user_search_by_partial_email_finds_nothing(signed_in, owner):
    response = signed_in.get("/admin/accounts/user/", {"q": "owner@"})

    assert list(response.context["cl"].result_list) == []


def test_builder_search_by_member_email_and_by_slug(signed_in, owner, stranger):
    builder = Builder.objects.get(slug="olives-studio")

    by_member = signed_in.get("/admin/accounts/builder/", {"q": "Owner@Example.com"})
    by_slug = signed_in.get("/admin/accounts/builder/", {"q": "olives-studio"})
    by_stranger = signed_in.get("/admin/accounts/builder/", {"q": "stranger@example.net"})

    assert list(by_member.context["cl"].result_list) == [builder]
    assert list(by_slug.context["cl"].result_list) == [builder]
    assert list(by_stranger.context["cl"].result_list) == []


def test_adding_a_user_in_the_admin(signed_in):
    response = signed_in.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Person@Example.org",
            "name": "New Person",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    assert User.objects.get_by_email("new.person@example.org").name == "New Person"


def test_adding_a_duplicate_email_in_another_case_is_a_form_error(signed_in, owner):
    response = signed_in.post(
        "/admin/accounts/user/add/",
        {
            "email": "OWNER@example.com",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors)
