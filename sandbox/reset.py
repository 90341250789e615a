from django.apps import apps
from django.db import transaction

SANDBOX_APPS = ("sandbox", "sandbox_stripe", "sandbox_calendly")


def reset_sandbox() -> dict[str, int]:
    """Delete every row the sandbox holds (Stripe and Calendly state, deliveries)."""
    counts = {}
    with transaction.atomic():
        for label in SANDBOX_APPS:
            for model in apps.get_app_config(label).get_models():
                deleted, _ = model._default_manager.all().delete()
                counts[model._meta.label] = deleted
    return counts
