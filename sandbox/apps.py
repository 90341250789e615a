from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Offline stand-ins for Stripe and Calendly. Never installed in production."""

    name = "sandbox"
    verbose_name = "Provider sandbox"
