"""Twenty copies of one delivery at the same moment, over real HTTP, on PostgreSQL."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.webhooks.conftest import current_secret, default_event, endpoint, sign
from webhooks.models import WebhookEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.connections
@pytest.mark.parametrize("provider", ["stripe", "calendly"])
def test_twenty_concurrent_duplicates_leave_one_row_and_one_processing(
    live_server, handlers, provider: str
) -> None:
    body = json.dumps(default_event(provider))
    header_name = "Stripe-Signature" if provider == "stripe" else "Calendly-Webhook-Signature"
    url = live_server.url + endpoint(provider)
    start = threading.Barrier(20)

    def deliver(_: int) -> tuple[int, str]:
        start.wait(10)
        response = requests.post(
            url,
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                header_name: sign(current_secret(provider), body),
            },
            timeout=30,
            allow_redirects=False,
        )
        return response.status_code, response.json()["status"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(deliver, range(20)))
    assert {status for status, _ in results} == {200}
    assert sorted(outcome for _, outcome in results).count("stored") == 1
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert len(handlers.calls) == 1
