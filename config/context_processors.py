from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, object]:
    return {
        "environment": settings.ENVIRONMENT,
        "request_id": getattr(request, "request_id", None),
    }
