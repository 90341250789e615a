from django.apps import AppConfig


class SiteConfig(AppConfig):
    """Holds no models: registers the system checks for unsafe configuration."""

    name = "config"
    verbose_name = "Site configuration"

    def ready(self) -> None:
        from config import checks  # noqa: F401
