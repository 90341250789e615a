"""The two webhook endpoints: verify, store, acknowledge. Nothing else happens here.

``/webhooks/<provider>/<path token>/`` with or without the final slash (a redirect
is a failed delivery to both providers). A wrong token is Django's ordinary 404.
Every refusal is the same generic 400; the reason goes to the logs, the rejection
counters and the audit trail, never to the requester. Never 410: Calendly deletes
a subscription that answers 410.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from webhooks import services, verification
from webhooks.models import Provider


def _quiet(response: HttpResponse) -> HttpResponse:
    # Django logs every 4xx with the request path, which holds the secret token;
    # services.record_rejection has logged the reason already.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _receive(request: HttpRequest, provider: str, expected: str, token: str) -> HttpResponse:
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Http404
    if request.method != "POST":
        return _quiet(JsonResponse({"error": "method_not_allowed"}, status=405))
    request_id = getattr(request, "request_id", "")
    try:
        delivery = verification.verify(provider, request)
    except verification.Rejected as exc:
        services.record_rejection(provider, exc.reason, exc.detail)
        return _quiet(
            JsonResponse({"error": "invalid_request", "request_id": request_id}, status=400)
        )
    outcome = services.accept(delivery, headers=request.headers, request_id=request_id)
    return JsonResponse({"status": outcome})


@csrf_exempt
def stripe(request: HttpRequest, token: str) -> HttpResponse:
    return _receive(request, Provider.STRIPE, settings.STRIPE_WEBHOOK_PATH_TOKEN, token)


@csrf_exempt
def calendly(request: HttpRequest, token: str) -> HttpResponse:
    return _receive(request, Provider.CALENDLY, settings.CALENDLY_WEBHOOK_PATH_TOKEN, token)
