"""The fault knob: the next N API requests answer 429 with Retry-After (or a 5xx)."""

from sandbox.calendly_sandbox.models import Fault

API = "/sandbox/calendly/api/users/me"


def test_the_next_requests_are_rate_limited_then_served(client, event_type, settings):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {settings.CALENDLY_API_TOKEN}"}
    client.post("/sandbox/calendly/fault/", {"status": 429, "count": 2, "retry_after": 3})

    answers = [client.get(API, **auth) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0]["Retry-After"] == "3"
    assert answers[0].json()["title"] == "Too Many Requests"
    assert Fault.objects.get().remaining == 0


def test_a_5xx_fault(client, event_type, settings):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {settings.CALENDLY_API_TOKEN}"}
    client.post("/sandbox/calendly/fault/", {"status": 503, "count": 1, "retry_after": 0})

    assert client.get(API, **auth).status_code == 503
    assert client.get(API, **auth).status_code == 200


def test_unauthenticated_requests_do_not_use_up_the_fault(client, event_type):
    client.post("/sandbox/calendly/fault/", {"status": 429, "count": 1, "retry_after": 1})

    assert client.get(API).status_code == 401
    assert Fault.objects.get().remaining == 1
