"""Sign-up: a client's account, unverified and signed in; the same answer for an
address that has an account (whose owner is told); the password rules on the form;
bad input refused with a message, never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client

from accounts.models import SignIn, User
from audit.models import AuditEntry
from core.models import OutboxMessage
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

GOOD = "a long and unusual passphrase 7"  # pragma: allowlist secret


def sign_up(client: Client, capture, **fields: str):
    data = {
        "email": "new.client@example.org",
        "name": "Nora Newcomer",
        "password1": GOOD,
        "password2": GOOD,
        "time_zone": "",
        **fields,
    }
    with capture(execute=True):
        return client.post("/accounts/signup/", data)


def test_sign_up_makes_an_unverified_account_signed_in_and_emails_a_link(
    client, django_capture_on_commit_callbacks
) -> None:
    answer = sign_up(
        client,
        django_capture_on_commit_callbacks,
        email=" New.Client@EXAMPLE.org ",
        time_zone="Europe/Paris",
    )
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/signup/done/")
    user = User.objects.get_by_email("new.client@example.org")
    assert user.email == "New.Client@example.org"  # the domain normalised, as Django does
    assert (user.name, user.time_zone, user.email_verified_at) == (
        "Nora Newcomer",
        "Europe/Paris",
        None,
    )
    assert user.check_password(GOOD)
    # Signed in: the account page answers, and the sign-in is recorded.
    assert client.get("/accounts/").status_code == 200
    assert SignIn.objects.filter(user=user).count() == 1
    [email] = mail.outbox
    assert email.to == ["New.Client@example.org"]
    assert "/accounts/verify/" in email.body
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {
        "accounts.user.created",
        "accounts.signup.completed",
        "accounts.email.verification_sent",
        "accounts.user.login_succeeded",
    } <= actions
    done = client.get("/accounts/signup/done/").content.decode()
    assert "Check your email" in done


@pytest.mark.parametrize(
    ("given", "lands_on"),
    [
        ("/bookings/claim/", "/bookings/claim/"),
        ("https://evil.example/steal", "/accounts/signup/done/"),
        ("//evil.example/", "/accounts/signup/done/"),
    ],
)
def test_sign_up_returns_to_a_page_of_this_site_only(
    client, django_capture_on_commit_callbacks, given, lands_on
) -> None:
    form = client.get("/accounts/signup/", {"next": given}).content.decode()
    safe = not given.startswith(("http", "//"))
    assert (f'name="next" value="{given}"' in form) is safe
    answer = sign_up(client, django_capture_on_commit_callbacks, next=given)
    assert (answer.status_code, answer["Location"]) == (302, lands_on)


def test_the_broker_never_carries_the_address_or_the_link(
    client, django_capture_on_commit_callbacks
) -> None:
    sign_up(client, django_capture_on_commit_callbacks)
    [message] = OutboxMessage.objects.all()
    payload = json.loads(message.payload)
    assert payload["args"][0] == "verify_email"
    assert "example.org" not in message.payload
    assert "/accounts/verify/" not in message.payload


def test_an_address_with_an_account_gets_the_same_answer_and_its_owner_is_told(
    client, stranger, django_capture_on_commit_callbacks
) -> None:
    answer = sign_up(client, django_capture_on_commit_callbacks, email="STRANGER@example.net")
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/signup/done/")
    assert User.objects.count() == 1
    assert stranger.check_password(PASSWORD)  # nothing about the account changed
    [notice] = mail.outbox
    assert notice.to == ["stranger@example.net"]
    assert "already has one" in notice.body
    assert "/accounts/password/reset/" in notice.body
    entry = AuditEntry.objects.get(action="accounts.signup.address_taken")
    assert "example.net" not in json.dumps(entry.data)
    # A second try within the hour is audited, and does not email again.
    sign_up(Client(), django_capture_on_commit_callbacks, email="stranger@example.net")
    assert len(mail.outbox) == 1
    assert AuditEntry.objects.filter(action="accounts.signup.address_taken").count() == 2


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short pass", "too short"),
        ("password1234", "too common"),
        ("384729105638", "entirely numeric"),
        ("new.client@example.org", "cannot be your email address"),
    ],
)
def test_the_password_rules_are_told_on_the_form(
    client, django_capture_on_commit_callbacks, password: str, message: str
) -> None:
    answer = sign_up(
        client, django_capture_on_commit_callbacks, password1=password, password2=password
    )
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not User.objects.exists()
    assert mail.outbox == []


def test_two_different_passwords_are_refused(client, django_capture_on_commit_callbacks) -> None:
    answer = sign_up(client, django_capture_on_commit_callbacks, password2=GOOD + "x")
    assert answer.status_code == 400
    assert "The two passwords are not the same." in answer.content.decode()


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not an address"},
        {"email": "a" * 250 + "@example.org"},
        {"name": "Nul\x00Byte"},
        {"name": "   "},
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "localtime"},
        {"password1": "x" * 5000, "password2": "x" * 5000},
    ],
)
def test_bad_input_is_refused_with_a_message(
    client, django_capture_on_commit_callbacks, fields
) -> None:
    answer = sign_up(client, django_capture_on_commit_callbacks, **fields)
    assert answer.status_code == 400
    assert 'class="error"' in answer.content.decode()
    assert not User.objects.exists()


def test_a_name_in_any_script_is_kept(client, django_capture_on_commit_callbacks) -> None:
    sign_up(client, django_capture_on_commit_callbacks, name="Zoë 山田 Ōtsuka")
    assert User.objects.get().name == "Zoë 山田 Ōtsuka"


def test_a_persian_name_with_a_zero_width_non_joiner_between_letters_is_kept(
    client, django_capture_on_commit_callbacks
) -> None:
    name = "\u0645\u06cc\u200c\u0646\u0627 \u0631\u0636\u0627\u06cc\u06cc"  # Mina Rezayi
    sign_up(client, django_capture_on_commit_callbacks, name=name)
    assert User.objects.get().name == name


@pytest.mark.parametrize(
    "name",
    [
        "Nora \u202eremmocweN",  # right-to-left override: spoofs "Booked by ..."
        "\u2067Nora\u2069",  # isolates
        "Nora\u200b",  # zero-width space
        "Nora\u200c",  # a non-joiner after the last letter joins nothing
        "\u200dNora",  # nor a joiner before the first
        "No\u200c ra",  # nor one before a space
        "Nora\u00adN",  # soft hyphen (Cf)
        "Nora\x07",  # bell (Cc)
        "Nora\x85N",  # next line (Cc)
    ],
)
def test_a_name_with_control_or_format_characters_is_refused(
    client, django_capture_on_commit_callbacks, name
) -> None:
    answer = sign_up(client, django_capture_on_commit_callbacks, name=name)
    assert answer.status_code == 400
    assert "A name cannot hold control characters" in answer.content.decode()
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("name", "told"),
    [
        ("\u3164", "at least one visible letter"),  # a Hangul filler: draws nothing
        ("\u2800\u2800", "at least one visible letter"),  # blank braille
        ("\uffa0 \u3164", "at least one visible letter"),
        ("N" + "\u0301" * 150, "at most 4 accents"),  # marks stacked on one letter
    ],
)
def test_a_name_that_looks_blank_or_garbles_the_line_is_refused(
    client, django_capture_on_commit_callbacks, name, told
) -> None:
    answer = sign_up(client, django_capture_on_commit_callbacks, name=name)
    assert answer.status_code == 400
    assert told in answer.content.decode()
    assert not User.objects.exists()


def test_a_name_with_a_few_accents_on_a_letter_is_kept(
    client, django_capture_on_commit_callbacks
) -> None:
    sign_up(client, django_capture_on_commit_callbacks, name="Nguyễn Thị Ánh")
    assert User.objects.get().name == "Nguyễn Thị Ánh"


def test_a_name_is_kept_without_surrounding_spaces(
    client, django_capture_on_commit_callbacks
) -> None:
    sign_up(client, django_capture_on_commit_callbacks, name="\u2003 Nora Newcomer\u3000\n")
    assert User.objects.get().name == "Nora Newcomer"


def test_a_new_address_is_signed_in_and_a_taken_one_is_not(
    client, stranger, django_capture_on_commit_callbacks
) -> None:
    """What README's Accounts section says: the same page for both, but the session
    tells them apart (the per-address sign-up rate limit bounds how often)."""
    taken = sign_up(client, django_capture_on_commit_callbacks, email="stranger@example.net")
    assert "_auth_user_id" not in client.session
    fresh = Client()
    new = sign_up(fresh, django_capture_on_commit_callbacks)
    assert "_auth_user_id" in fresh.session
    assert taken["Location"] == new["Location"] == "/accounts/signup/done/"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    accounts = readme.split("### Accounts", 1)[1].split("\n### ", 1)[0]
    assert "the session tells them apart" in " ".join(accounts.split())


def test_the_form_needs_its_csrf_token(django_capture_on_commit_callbacks) -> None:
    strict = Client(enforce_csrf_checks=True)
    answer = sign_up(strict, django_capture_on_commit_callbacks)
    assert answer.status_code == 403
    assert not User.objects.exists()


def test_signed_in_people_are_sent_to_their_account(client, stranger) -> None:
    client.force_login(stranger)
    answer = client.get("/accounts/signup/")
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/")


def test_the_sign_in_page_links_to_sign_up_and_reset(client) -> None:
    page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/signup/"' in page
    assert 'href="/accounts/password/reset/"' in page


def test_staff_see_and_filter_by_verified_status(staff, stranger) -> None:
    from tests.conftest import step_up

    User.objects.create_user(email="pending@example.org", password=PASSWORD, email_verified_at=None)
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    unverified = admin.get("/admin/accounts/user/?verified=no").content.decode()
    assert "Email verified" in unverified
    assert unverified.count('class="field-id"') == 1
    verified = admin.get("/admin/accounts/user/?verified=yes").content.decode()
    assert verified.count('class="field-id"') == 2
