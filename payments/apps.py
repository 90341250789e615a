from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # webhooks knows no provider: this tells it how Stripe signs and keys its events.
        from payments.stripe_webhooks import STRIPE
        from webhooks.providers import providers

        providers.register(STRIPE)
