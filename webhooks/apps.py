from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Each domain app declares what it does with an event in its own
        # webhook_handlers.py; importing those modules registers the handlers.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("webhook_handlers")
