from django.apps import AppConfig


class StripeSandboxConfig(AppConfig):
    name = "sandbox.stripe_sandbox"
    label = "sandbox_stripe"
    verbose_name = "Stripe sandbox"
