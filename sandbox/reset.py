from django.apps import apps

from sandbox import db

SANDBOX_APPS = ("sandbox", "sandbox_stripe", "sandbox_calendly")


def reset_sandbox() -> dict[str, int]:
    """Delete every row the sandbox holds (Stripe and Calendly state, deliveries)."""
    counts = {}
    with db.atomic():
        for label in SANDBOX_APPS:
            for model in apps.get_app_config(label).get_models():
                deleted, _ = model._default_manager.all().delete()
                counts[model._meta.label] = deleted
    return counts
