from django.apps import AppConfig


class StripeSandboxConfig(AppConfig):
    name = "sandbox.stripe_sandbox"
    label = "sandbox_stripe"
    verbose_name = "Stripe sandbox"

    def ready(self) -> None:
        from sandbox import delivery
        from sandbox.stripe_sandbox import services

        # Expire overdue sessions, settle delayed payments, open disputes: on every
        # dispatcher pass (and every deliver_due() in tests).
        delivery.on_tick(services.run_due)
