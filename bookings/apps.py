from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Bookings"

    def ready(self) -> None:
        # webhooks knows no provider: this tells it how Calendly signs and keys its events.
        from bookings.calendly_webhooks import CALENDLY
        from webhooks.providers import providers

        providers.register(CALENDLY)

        # accounts knows no app above it: this tells its data-subject requests what
        # bookings holds on a person.
        from bookings import privacy

        privacy.register()
