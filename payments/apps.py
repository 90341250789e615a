from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # webhooks knows no provider: this tells it how Stripe signs and keys its events.
        from payments.stripe_webhooks import STRIPE
        from webhooks.providers import providers

        providers.register(STRIPE)

        # accounts knows no app above it: this tells its data-subject requests what
        # payments holds on a person.
        from payments import privacy

        privacy.register()
