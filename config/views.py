"""Site-wide views: home, health probes and the generic error pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _database_ready() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("readyz.database-unreachable", exc_info=True)
        return False
    return True


def _broker_ready() -> bool:
    if not settings.REDIS_URL:
        return True  # tasks run in-process: there is no broker to reach
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ValueError):  # ValueError: a URL redis cannot parse
        logger.warning("readyz.broker-unreachable", exc_info=True)
        return False


@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database and the broker answer; 503 otherwise."""
    checks = {"database": _database_ready(), "broker": _broker_ready()}
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def _error(request: HttpRequest, status: int, title: str) -> HttpResponse:
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "request_id": getattr(request, "request_id", None)},
        status=status,
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, 400, "Bad request")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    user = getattr(request, "user", None)
    if request.path.startswith("/admin/") and user is not None and user.is_staff:
        # Staff stay in the back-office: its own page, their roles, a way back.
        from django.contrib import admin

        return render(
            request,
            "admin/403.html",
            {
                **admin.site.each_context(request),
                "title": "You do not have permission for this",
                "roles": list(user.groups.values_list("name", flat=True)),
                "request_id": getattr(request, "request_id", None),
            },
            status=403,
        )
    return _error(request, 403, "Forbidden")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, 404, "Not found")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(request, 500, "Something went wrong")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    logger.warning("security.csrf-failure", extra={"reason": reason})
    return _error(request, 403, "Forbidden")
