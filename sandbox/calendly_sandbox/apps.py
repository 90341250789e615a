from django.apps import AppConfig


class CalendlySandboxConfig(AppConfig):
    name = "sandbox.calendly_sandbox"
    label = "sandbox_calendly"
    verbose_name = "Calendly sandbox"

    def ready(self) -> None:
        from sandbox import delivery
        from sandbox.calendly_sandbox import services

        # Disable the subscriptions whose deliveries keep failing, as Calendly does:
        # on every dispatcher pass (and every deliver_due() in tests).
        delivery.on_tick(services.subscriptions_follow_deliveries)
