"""Every response carries the security headers; production adds HSTS and ``__Host-`` cookies."""

from __future__ import annotations

import json
import re

import pytest

from tests.config.conftest import production_values, run_manage

pytestmark = pytest.mark.django_db

PAGES = ["/", "/healthz", "/readyz", "/admin/login/", "/no-such-page"]
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)

    assert response.status_code in (200, 404)
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    directives = _directives(policy)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "payment=()" in response["Permissions-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert REQUEST_ID.match(response["X-Request-ID"])


def test_each_response_gets_its_own_request_id(client):
    ids = {client.get("/healthz")["X-Request-ID"] for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize(
    "incoming", ["0f8e2a4c-1b3d-4e5f-9a7b-6c5d4e3f2a1b", "lb-7.proxy_42", "A" * 64]
)
def test_a_well_formed_incoming_request_id_is_kept(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["short", "A" * 65, "id with spaces", "<script>alert(1)</script>", "abc;def=ghi", "café-1234"],
)
def test_a_malformed_incoming_request_id_is_replaced(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


# --- production: HSTS and __Host- cookies --------------------------------------------

PRODUCTION_RESPONSES = """
import json
from django.conf import settings
from django.test import Client, override_settings

# collectstatic has not run here, and the manifest storage would refuse {% static %}.
storages = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
cookie_settings = [
    "SESSION_COOKIE_NAME", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_NAME", "CSRF_COOKIE_SECURE",
]
cookie_attributes = ["secure", "httponly", "samesite", "path", "domain"]
with override_settings(STORAGES=storages):
    client = Client(HTTP_HOST="slotpay.example")
    shown = {"settings": {name: getattr(settings, name) for name in cookie_settings}}
    for path in ["/", "/healthz", "/admin/login/"]:
        response = client.get(path, secure=True)
        shown[path] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "cookies": {
                name: {key: morsel[key] for key in cookie_attributes}
                for name, morsel in response.cookies.items()
            },
        }
    plain = client.get("/healthz")
    shown["http"] = {"status": plain.status_code, "location": plain.get("Location")}
print(json.dumps(shown))
"""


@pytest.fixture(scope="module")
def production_responses() -> dict:
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        PRODUCTION_RESPONSES,
        environment="production",
        values=production_values(),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["/", "/healthz", "/admin/login/"])
def test_production_sends_hsts_with_preload(production_responses, path):
    response = production_responses[path]

    assert response["status"] == 200
    headers = {name.lower(): value for name, value in response["headers"].items()}
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_production_redirects_plain_http_to_https(production_responses):
    assert production_responses["http"] == {
        "status": 301,
        "location": "https://slotpay.example/healthz",
    }


def test_production_csrf_cookie_is_a_host_cookie(production_responses):
    cookies = production_responses["/admin/login/"]["cookies"]

    assert list(cookies) == ["__Host-csrftoken"]
    assert cookies["__Host-csrftoken"] == {
        "secure": True,
        "httponly": True,
        "samesite": "Lax",
        "path": "/",
        "domain": "",  # a __Host- cookie must not name a domain
    }


def test_production_session_cookie_is_a_host_cookie(production_responses):
    assert production_responses["settings"] == {
        "SESSION_COOKIE_NAME": "__Host-session",
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_NAME": "__Host-csrftoken",
        "CSRF_COOKIE_SECURE": True,
    }
