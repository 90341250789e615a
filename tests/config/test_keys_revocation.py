"""Emergency revocation, key by key: after docs/security-policy.md's procedure the old
key no longer works, and the service does under the new one.

tests/test_seed_compliance.py::test_key_revocation_process does this for the webhook
secrets of both providers, a Stripe API key and the field-encryption key; these are
the other keys: ``SECRET_KEY``, ``BLIND_INDEX_KEY``, ``AUDIT_CHECKPOINT_KEY`` and
``CALENDLY_API_TOKEN``.
"""

from __future__ import annotations

import base64
import io
import secrets

import pytest
from django.core import signing
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from audit import Category, record
from audit.checkpoints import checkpoint_write
from audit.models import AuditCheckpoint
from audit.services import verify_chain
from bookings.calendly import CalendlyClient, Unauthorized
from core.encryption import blind_index
from payments import stripe_gateway
from sandbox.stripe_sandbox.models import RestrictedKey
from tests.conftest import PASSWORD
from tests.sandbox.stripe.helpers import new_session, stripe_sandbox

__all__ = ["stripe_sandbox"]

pytestmark = pytest.mark.django_db


def _sign_in(browser: Client, email: str):
    return browser.post("/accounts/login/", {"username": email, "password": PASSWORD})


def test_secret_key_revoked_signs_everyone_out_and_voids_what_it_signed(settings, owner):
    """Replace SECRET_KEY (no fallback): sessions and signed values made under the old
    one are refused; signing in again works."""
    browser = Client()
    assert _sign_in(browser, owner.email).status_code == 302
    assert browser.get("/accounts/").status_code == 200
    intent = signing.dumps({"booking": "bk_1"}, salt="slotpay.test")

    settings.SECRET_KEY = secrets.token_urlsafe(50)

    assert browser.get("/accounts/").status_code == 302  # signed out: to the sign-in page
    with pytest.raises(signing.BadSignature):
        signing.loads(intent, salt="slotpay.test")
    assert _sign_in(browser, owner.email).status_code == 302
    assert browser.get("/accounts/").status_code == 200


def test_blind_index_key_revoked_finds_no_one_by_the_old_key(settings):
    """New key first, ``reindex_blind_index``, old key removed: an index computed with
    the leaked key matches no row any more, and everyone signs in under the new one."""
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    settings.BLIND_INDEX_KEY = old
    person = User.objects.create_user(email="leak@example.com", password=PASSWORD, name="L")
    leaked_index = blind_index("leak@example.com")

    settings.BLIND_INDEX_KEY = f"{new},{old}"
    call_command("reindex_blind_index", stdout=io.StringIO(), stderr=io.StringIO())
    settings.BLIND_INDEX_KEY = new

    assert not User.objects.filter(email_index=leaked_index).exists()
    assert User.objects.get(email_index=blind_index("leak@example.com")) == person
    assert _sign_in(Client(), "leak@example.com").status_code == 302


def test_audit_checkpoint_key_revoked_is_trusted_no_more(settings):
    """Replace AUDIT_CHECKPOINT_KEY and write a checkpoint under the new one: what the
    leaked key signs (a checkpoint over a rewritten chain) is untrusted, unless an
    operator names its public key for checkpoints exported before the leak."""
    record("tests.revocation", category=Category.TRANSACTION, actor="tests", data={})
    checkpoint_write(actor="tests")
    leaked_public = AuditCheckpoint.objects.get().public_key

    settings.AUDIT_CHECKPOINT_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    record("tests.revocation", category=Category.TRANSACTION, actor="tests", data={})
    checkpoint_write(actor="tests")

    refused = verify_chain(full=True)
    assert not refused.ok
    assert "signed by a key this site does not trust" in refused.reason
    assert AuditCheckpoint.objects.order_by("-pk").first().public_key != leaked_public
    settings.AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS = [leaked_public]  # before-leak exports
    assert verify_chain(full=True).ok


def test_calendly_token_revoked_is_refused(site, settings):
    """Revoke the token at Calendly, put the new one in CALENDLY_API_TOKEN: the old one
    is refused (401), calls go on with the new one."""
    old = settings.CALENDLY_API_TOKEN
    with CalendlyClient() as calendly:
        organization = calendly.current_user().current_organization

    settings.CALENDLY_API_TOKEN = secrets.token_urlsafe(24)  # Calendly now knows this one

    with CalendlyClient(token=old) as revoked, pytest.raises(Unauthorized):
        revoked.current_user()
    with CalendlyClient() as calendly:
        assert calendly.current_user().current_organization == organization


@pytest.mark.django_db(transaction=True)
def test_a_stripe_key_revoked_in_the_sandbox_dashboard_is_refused(settings, stripe_sandbox, staff):
    """The development stand-in for Stripe's dashboard revokes a restricted key: the
    API refuses it from then on (401), and the key that replaced it works."""
    permissions = {"checkout_sessions": "write"}
    old, new = (
        RestrictedKey.objects.create(
            name=name, key=f"rk_test_{secrets.token_urlsafe(24)}", permissions=permissions
        )
        for name in ("slotpay", "slotpay (rolled)")
    )
    settings.STRIPE_API_KEY = old.key
    session = new_session("bk_revoke")
    operator = Client()
    operator.force_login(staff)

    answer = operator.post(f"/sandbox/stripe/keys/{old.pk}/revoke/")

    assert answer.status_code == 302
    with pytest.raises(stripe_gateway.AuthenticationFailed) as refused:
        stripe_gateway.retrieve_checkout_session(session.id)
    assert refused.value.http_status == 401
    assert old.key not in str(refused.value)
    settings.STRIPE_API_KEY = new.key
    assert stripe_gateway.retrieve_checkout_session(session.id).id == session.id
    assert operator.post(f"/sandbox/stripe/keys/{old.pk}/revoke/").status_code == 404
    assert Client().post(f"/sandbox/stripe/keys/{new.pk}/revoke/").status_code == 302  # to sign-in
    assert RestrictedKey.objects.filter(pk=new.pk).exists()
