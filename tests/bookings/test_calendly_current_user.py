"""current_user(): who the token belongs to."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_current_user_is_the_sandbox_host(calendly, event_type, api_base):
    user = calendly.current_user()

    host = event_type.host
    assert user.uuid == host.uuid
    assert user.uri == f"{api_base}/users/{host.uuid}"
    assert user.name == "Ada Builder"
    assert user.slug == "ada"
    assert user.timezone == "Europe/Berlin"
    assert user.current_organization == f"{api_base}/organizations/{host.organization.uuid}"
    assert user.scheduling_url.endswith("/sandbox/calendly/ada/")


def test_an_empty_sandbox_makes_a_default_host(calendly, transactional_db):
    assert calendly.current_user().slug == "sandbox-host"
