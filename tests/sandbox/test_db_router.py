"""In development the sandbox keeps its own database: its apps there, ours never."""

from django.conf import settings

from accounts.models import User
from sandbox import db
from sandbox.calendly_sandbox.models import Invitee
from sandbox.models import Delivery
from sandbox.stripe_sandbox.models import StripeObject


def test_without_a_sandbox_database_everything_stays_on_default() -> None:
    router = db.SandboxRouter()
    assert db.alias() == "default"
    assert router.db_for_write(StripeObject) == "default"
    assert router.allow_migrate("default", "sandbox_stripe") is None


def test_with_one_the_sandbox_apps_live_there(monkeypatch) -> None:
    monkeypatch.setitem(settings.DATABASES, "sandbox", dict(settings.DATABASES["default"]))
    router = db.SandboxRouter()

    assert db.alias() == "sandbox"
    for model in (StripeObject, Invitee, Delivery):
        assert router.db_for_read(model) == router.db_for_write(model) == "sandbox"
        assert router.allow_migrate("sandbox", model._meta.app_label) is True
        assert router.allow_migrate("default", model._meta.app_label) is False
    assert router.db_for_write(User) is None
    assert router.allow_migrate("default", "accounts") is True
    assert router.allow_migrate("sandbox", "accounts") is False
