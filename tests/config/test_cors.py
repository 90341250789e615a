"""CORS for the API only, to the origins listed in CORS_ALLOWED_ORIGINS (none by
default), and never credentials with a wildcard (config/cors.py, slotpay.E030)."""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.test import Client

from config.cors import check_cors_credentials
from tests.config.conftest import run_manage

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"
OTHER = "https://other.example.net"
API = "/api/v1/event-types/"


@pytest.fixture
def listed(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    return settings


def _preflight(origin: str, path: str = API):
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )


def test_the_defaults_allow_no_origin_and_no_credentials(settings):
    assert settings.CORS_ALLOWED_ORIGINS == []
    assert settings.CORS_ALLOW_CREDENTIALS is False
    assert not getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False)
    assert re.match(settings.CORS_URLS_REGEX, "/api/v1/bookings/")
    assert not re.match(settings.CORS_URLS_REGEX, "/accounts/login/")

    answer = Client().get(API, HTTP_ORIGIN=APP)
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer


def test_a_listed_origin_gets_the_cors_headers(listed):
    answer = Client().get(API, HTTP_ORIGIN=APP)

    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in answer
    exposed = {name.strip().lower() for name in answer["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "x-request-id"} <= exposed
    assert "origin" in answer["Vary"].lower()


def test_another_origin_gets_none(listed):
    for origin in (OTHER, "null", APP + ".evil.example", "http://app.example.com"):
        answer = Client().get(API, HTTP_ORIGIN=origin)
        assert "Access-Control-Allow-Origin" not in answer, origin


def test_the_preflight_of_a_listed_origin_is_answered(listed):
    answer = _preflight(APP)

    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == APP
    assert "GET" in answer["Access-Control-Allow-Methods"]
    assert "authorization" in answer["Access-Control-Allow-Headers"]
    assert int(answer["Access-Control-Max-Age"]) > 0


def test_the_preflight_of_another_origin_allows_nothing(listed):
    answer = _preflight(OTHER)

    assert "Access-Control-Allow-Origin" not in answer
    assert "Access-Control-Allow-Methods" not in answer


def test_pages_outside_the_api_never_get_cors_headers(listed):
    for path in ("/accounts/login/", "/", "/healthz"):
        assert "Access-Control-Allow-Origin" not in Client().get(path, HTTP_ORIGIN=APP)
    assert "Access-Control-Allow-Origin" not in _preflight(APP, "/accounts/login/")


def test_with_credentials_the_listed_origin_is_echoed_never_a_wildcard(listed):
    listed.CORS_ALLOW_CREDENTIALS = True

    answer = Client().get(API, HTTP_ORIGIN=APP)

    assert answer["Access-Control-Allow-Origin"] == APP
    assert answer["Access-Control-Allow-Credentials"] == "true"
    assert "Access-Control-Allow-Origin" not in Client().get(API, HTTP_ORIGIN=OTHER)
    assert check_cors_credentials() == []


def test_a_throttled_answer_is_readable_by_the_listed_origin(listed):
    listed.RATE_LIMITS_ENABLED = True
    listed.REST_FRAMEWORK = {
        **listed.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **listed.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "address": "1/minute",
        },
    }
    caches[listed.RATE_LIMIT_CACHE].clear()
    try:
        Client().get(API, HTTP_ORIGIN=APP)
        answer = Client().get(API, HTTP_ORIGIN=APP)
    finally:
        caches[listed.RATE_LIMIT_CACHE].clear()

    assert answer.status_code == 429
    assert answer["Access-Control-Allow-Origin"] == APP
    assert int(answer["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"CORS_ALLOW_ALL_ORIGINS": True}, "CORS_ALLOW_ALL_ORIGINS is on"),
        ({"CORS_ORIGIN_ALLOW_ALL": True}, "CORS_ALLOW_ALL_ORIGINS is on"),
        ({"CORS_ALLOWED_ORIGINS": ["*"]}, "holds '*'"),
        ({"CORS_ALLOWED_ORIGINS": [APP, "https://*.example.com"]}, "holds 'https://*.example.com'"),
        ({"CORS_ALLOWED_ORIGINS": ["null"]}, "holds 'null'"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [r".*"]}, "'.*' admits https://attacker.invalid"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [r"^https://"]}, "admits https://attacker.invalid"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [re.compile(r"^https?://.+$")]}, "admits"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [r"^(https://app\.example\.com|null)$"]}, "admits null"),
    ],
)
def test_credentials_with_a_wildcard_are_a_check_error(settings, overrides, reason):
    settings.CORS_ALLOW_CREDENTIALS = True
    for name, value in overrides.items():
        setattr(settings, name, value)

    [error] = check_cors_credentials()

    assert error.id == "slotpay.E030"
    assert reason in error.msg


def test_a_wildcard_without_credentials_and_exact_regexes_with_them_pass(settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    assert check_cors_credentials() == []

    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOW_CREDENTIALS = True
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^https://[a-z0-9-]+\.example\.com$", r"(unclosed"]
    assert check_cors_credentials() == []


def test_manage_py_check_refuses_credentials_with_any_origin_from_the_environment():
    """The check is registered (config.apps), and the variables reach it."""
    result = run_manage(
        "check",
        environment="test",
        values={"CORS_ALLOWED_ORIGINS": "null", "CORS_ALLOW_CREDENTIALS": "true"},
    )

    assert result.returncode != 0
    assert "slotpay.E030" in result.stderr
    assert "CORS_ALLOWED_ORIGINS holds 'null'" in result.stderr

    listed = run_manage(
        "check",
        environment="test",
        values={"CORS_ALLOWED_ORIGINS": f"{APP},{OTHER}", "CORS_ALLOW_CREDENTIALS": "true"},
    )
    assert listed.returncode == 0, listed.stderr
