from django.apps import AppConfig


class SiteConfig(AppConfig):
    """Holds no models: registers the system checks for unsafe configuration."""

    name = "config"
    verbose_name = "Site configuration"

    def ready(self) -> None:
        from django.contrib import admin

        from config import checks, cors  # noqa: F401 (system checks)
        from core.admin import harden

        # After django.contrib.admin's ready(): every app's admin module is registered.
        harden(admin.site)
