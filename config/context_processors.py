from django.conf import settings
from django.http import HttpRequest

from config.keys import stripe_mode


def site(request: HttpRequest) -> dict[str, object]:
    return {
        "environment": settings.ENVIRONMENT,
        # "live", "test", or "unknown" for a key of no known mode (a check refuses it
        # in staging and production): the admin's banner shows it on every page.
        "stripe_mode": stripe_mode(settings.STRIPE_API_KEY or "") or "unknown",
        "request_id": getattr(request, "request_id", None),
    }
