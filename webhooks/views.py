"""The webhook endpoints: verify, store, acknowledge. Nothing else happens here.

``/webhooks/<provider>/<path token>/`` with or without the final slash (a redirect
is a failed delivery to both providers), one per provider an app registered
(``webhooks.providers``). A wrong token, or a provider no app registered, is
Django's ordinary 404.
Every refusal is the same generic 400; the reason goes to the logs, the rejection
counters and the audit trail, never to the requester. Never 410: Calendly deletes
a subscription that answers 410.
"""

from __future__ import annotations

import hmac

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from webhooks import services, verification
from webhooks.providers import providers


def _quiet(response: HttpResponse) -> HttpResponse:
    # Django logs every 4xx with the request path, which holds the secret token;
    # services.rejection_record has logged the reason already.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@csrf_exempt
def receive(request: HttpRequest, provider: str, token: str) -> HttpResponse:
    webhook = providers.get(provider)
    if webhook is None:
        raise Http404
    expected = webhook.path_token()
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Http404
    if request.method != "POST":
        return _quiet(JsonResponse({"error": "method_not_allowed"}, status=405))
    request_id = getattr(request, "request_id", "")
    try:
        delivery = verification.verify(webhook, request)
    except verification.Rejected as exc:
        services.rejection_record(provider=webhook.name, reason=exc.reason, detail=exc.detail)
        return _quiet(
            JsonResponse({"error": "invalid_request", "request_id": request_id}, status=400)
        )
    outcome = services.event_accept(
        delivery=delivery, headers=request.headers, request_id=request_id
    )
    return JsonResponse({"status": outcome})
