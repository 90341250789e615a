from django.apps import AppConfig


class CalendlySandboxConfig(AppConfig):
    name = "sandbox.calendly_sandbox"
    label = "sandbox_calendly"
    verbose_name = "Calendly sandbox"
