"""Every kind of page scores 100 or more on the MDN HTTP Observatory, as production
serves it: the home page, a signed-in page, the admin, the API and the API docs.

The pages are requested from a process started with ``ENVIRONMENT=production`` (the
settings are read once per process: HSTS, ``__Host-`` Secure cookies and the HTTPS
redirect exist only there), on this test's database so that people can sign in. Each
page is asked for as the Observatory's scanner asks (tests/support/observatory.py):
over HTTPS, over plain HTTP, and with a foreign ``Origin``; the score uses the
Observatory's published rules. The API docs are found by URL name (``api-docs``,
``api-redoc``): until they exist the test fails, saying so.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.config.conftest import production_values, run_manage
from tests.support import observatory
from tests.support.observatory import Answer, Exchange

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "slotpay.example"
PAGES = ["home", "signed-in", "admin-login", "admin", "api", "api-docs", "api-redoc"]

# Run by `manage.py shell` in the production process: sign in a client and a staff
# member through the real sign-in forms, then ask for each page three ways.
PRODUCTION_PAGES = """
import json, secrets
from django.conf import settings
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse
from accounts.models import User

ORIGIN = %(origin)r
# collectstatic has not run here, and the manifest storage would refuse {%% static %%}.
storages = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

def answer(response):
    headers = [[k, v] for k, v in response.items()]
    headers += [["Set-Cookie", m.OutputString()] for m in response.cookies.values()]
    body = response.content.decode("utf-8", "replace") if not response.streaming else ""
    return {"status": response.status_code, "headers": headers, "body": body[:200000]}

def exchange(client, url_name, **kwargs):
    try:
        path = reverse(url_name, kwargs=kwargs or None)
    except NoReverseMatch as exc:
        return {"error": f"no URL named {url_name!r}: {exc}"}
    return {
        "url": f"https://{HOST}{path}",
        "https": answer(client.get(path, secure=True)),
        "http": answer(client.get(path)),
        "cors": answer(client.get(path, secure=True, headers={"Origin": ORIGIN})),
    }

HOST = %(host)r
password = secrets.token_urlsafe(16)
tag = secrets.token_hex(4)
client_email, staff_email = f"client-{tag}@client.example", f"staff-{tag}@slotpay.example"
User.objects.create_user(email=client_email, password=password, name="Obs Client")
User.objects.create_superuser(email=staff_email, password=password, name="Obs Staff")
shown = {}
with override_settings(STORAGES=storages):
    anonymous = Client(HTTP_HOST=HOST)
    shown["home"] = exchange(anonymous, "home")
    shown["admin-login"] = exchange(anonymous, "admin:login")

    person = Client(HTTP_HOST=HOST)
    signed_in = person.post(
        reverse("accounts:login"),
        {"username": client_email, "password": password},
        secure=True,
    )
    shown["sign-in"] = answer(signed_in) | {"location": signed_in.get("Location")}
    shown["signed-in"] = exchange(person, "bookings:mine")
    shown["api"] = exchange(person, "api:bookings")
    shown["api-docs"] = exchange(person, "api-docs")
    shown["api-redoc"] = exchange(person, "api-redoc")

    staff = Client(HTTP_HOST=HOST)
    staff_in = staff.post(
        reverse("admin:login"),
        {"username": staff_email, "password": password, "next": "/admin/"},
        secure=True,
    )
    shown["staff-sign-in"] = answer(staff_in) | {"location": staff_in.get("Location")}
    shown["admin"] = exchange(staff, "admin:index")
print(json.dumps(shown))
"""

_observed: dict[str, Any] = {}


def _database_url() -> str:
    """The URL of this test's database, for the production process to share."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql://")):
        message = "needs PostgreSQL (DATABASE_URL) to share the test database with a process"
        if os.environ.get("SLOTPAY_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return urlsplit(configured)._replace(path=f"/{connection.settings_dict['NAME']}").geturl()


@pytest.fixture
def observed() -> dict[str, Any]:
    """The pages as production serves them, requested once per test process."""
    if not _observed:
        values = production_values() | {
            "DATABASE_URL": _database_url(),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"),
        }
        script = PRODUCTION_PAGES % {"origin": observatory.OBSERVATORY_ORIGIN, "host": HOST}
        result = run_manage(
            "shell", "--no-imports", "-c", script, environment="production", values=values
        )
        assert result.returncode == 0, result.stderr[-3000:]
        _observed.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return _observed


def _answer(data: dict[str, Any]) -> Answer:
    return Answer(
        status=data["status"],
        headers=tuple((name, value) for name, value in data["headers"]),
        body=data["body"],
    )


# Which sign-in each page's session went through: its cookies count for the page.
SIGNED_IN_BY = {
    "signed-in": "sign-in",
    "api": "sign-in",
    "api-docs": "sign-in",
    "api-redoc": "sign-in",
    "admin": "staff-sign-in",
}


def _exchange(observed: dict[str, Any], page: str) -> Exchange:
    data = observed[page]
    if "error" in data:
        pytest.fail(f"{page}: {data['error']}", pytrace=False)
    sign_in = SIGNED_IN_BY.get(page)
    return Exchange(
        url=data["url"],
        https=_answer(data["https"]),
        http=_answer(data["http"]),
        cors=_answer(data["cors"]),
        earlier=(_answer(observed[sign_in]),) if sign_in else (),
    )


def test_sign_in_worked_in_production(observed):
    """Otherwise the signed-in pages below would be sign-in redirects, scored as such."""
    assert observed["sign-in"]["status"] == 302, observed["sign-in"]["status"]
    staff = observed["staff-sign-in"]
    assert (staff["status"], staff["location"]) == (302, "/admin/")


@pytest.mark.parametrize("page", PAGES)
def test_each_page_scores_100_or_more(observed, page):
    exchange = _exchange(observed, page)
    score = observatory.score(exchange)

    # The scanner refuses a page that does not answer 2xx (src/scanner/index.js).
    assert 200 <= exchange.https.status < 300, (page, exchange.https.status)
    assert score.total >= 100, f"{page} scores {score.total}: {score.explain()}"
    # No penalty at all: a bonus must never be what lifts a page over the line.
    assert score.uncurved == 100, score.explain()


@pytest.mark.parametrize("page", PAGES)
def test_no_cookie_goes_without_secure_in_production(observed, page):
    exchange = _exchange(observed, page)

    for raw in exchange.set_cookies():
        flags = {part.strip().split("=")[0].lower() for part in raw.split(";")[1:]}
        assert {"secure", "samesite"} <= flags, raw.split("=")[0]
        if "session" in raw.split("=")[0] or "csrf" in raw.split("=")[0]:
            assert "httponly" in flags, raw.split("=")[0]


def test_the_pages_set_the_cookies_scored(observed):
    """The cookie test must not pass for want of cookies: signing in sets the session
    cookie, and the admin's sign-in form the CSRF one."""
    names = {
        raw.split("=")[0]
        for page in ("signed-in", "admin-login", "admin")
        for raw in _exchange(observed, page).set_cookies()
    }

    assert {"__Host-session", "__Host-csrftoken"} <= names


# --- The scorer itself, on responses made up to fail each rule -------------------------

GOOD = (
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    ),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Set-Cookie", "__Host-session=abc; HttpOnly; Path=/; SameSite=Lax; Secure"),
)
REDIRECT = Answer(301, (("Location", "https://slotpay.example/"),))


def _made_up(headers=GOOD, *, body="<p>hi</p>", http=REDIRECT, cors_headers=()) -> Exchange:
    return Exchange(
        url="https://slotpay.example/",
        https=Answer(200, tuple(headers), body),
        http=http,
        cors=Answer(200, tuple(headers) + tuple(cors_headers)),
    )


def _without(name: str) -> tuple[tuple[str, str], ...]:
    return tuple(header for header in GOOD if header[0] != name)


def _replaced(name: str, value: str) -> tuple[tuple[str, str], ...]:
    return (*_without(name), (name, value))


def test_the_scorer_gives_the_published_bonuses_to_a_good_page():
    score = observatory.score(_made_up())

    # 100, +5 CSP without unsafe sources, +5 cookies, +5 referrer, +5 XFO via CSP,
    # +10 CORP same-origin.
    assert score.total == 130, score.explain()


@pytest.mark.parametrize(
    ("exchange", "test", "result", "total"),
    [
        pytest.param(
            _made_up(_without("Content-Security-Policy")),
            "content-security-policy",
            "csp-not-implemented",
            # -25 and -20 (no frame-ancestors, no X-Frame-Options): under 90, no bonus.
            55,
            id="no-csp",
        ),
        pytest.param(
            _made_up(
                _replaced(
                    "Content-Security-Policy",
                    "default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                )
            ),
            "content-security-policy",
            "csp-implemented-with-unsafe-inline",
            80,
            id="unsafe-inline-script",
        ),
        pytest.param(
            _made_up(
                _replaced("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
            ),
            "content-security-policy",
            "csp-implemented-with-no-unsafe-default-src-none",
            135,
            id="default-none",
        ),
        pytest.param(
            _made_up(_replaced("Strict-Transport-Security", "max-age=3600")),
            "strict-transport-security",
            "hsts-implemented-max-age-less-than-six-months",
            90 + 30,
            id="short-hsts",
        ),
        pytest.param(
            _made_up(_replaced("Set-Cookie", "__Host-session=abc; HttpOnly; Path=/; SameSite=Lax")),
            "cookies",
            "cookies-session-without-secure-flag-but-protected-by-hsts",
            90 + 25,
            id="cookie-without-secure",
        ),
        pytest.param(
            _made_up(_replaced("Set-Cookie", "__Host-csrftoken=abc; Path=/; Secure")),
            "cookies",
            "cookies-anticsrf-without-samesite-flag",
            80,
            id="csrf-cookie-without-samesite",
        ),
        pytest.param(
            _made_up(
                cors_headers=(
                    ("Access-Control-Allow-Origin", observatory.OBSERVATORY_ORIGIN),
                    ("Access-Control-Allow-Credentials", "true"),
                )
            ),
            "cross-origin-resource-sharing",
            "cross-origin-resource-sharing-implemented-with-universal-access",
            50,
            id="credentialed-cors-for-any-origin",
        ),
        pytest.param(
            _made_up(http=Answer(200, GOOD)),
            "redirection",
            "redirection-missing",
            80,
            id="no-https-redirect",
        ),
        pytest.param(
            _made_up(_replaced("Referrer-Policy", "unsafe-url")),
            "referrer-policy",
            "referrer-policy-unsafe",
            95 + 25,
            id="unsafe-referrer",
        ),
        pytest.param(
            _made_up(_without("X-Content-Type-Options")),
            "x-content-type-options",
            "x-content-type-options-not-implemented",
            95 + 30,
            id="no-nosniff",
        ),
        pytest.param(
            _made_up(_replaced("Cross-Origin-Resource-Policy", "same-origin-please")),
            "cross-origin-resource-policy",
            "cross-origin-resource-policy-header-invalid",
            95 + 20,
            id="bad-corp",
        ),
        pytest.param(
            _made_up(body='<script src="http://cdn.example.net/x.js"></script>'),
            "subresource-integrity",
            "sri-not-implemented-and-external-scripts-not-loaded-securely",
            50,
            id="external-script-over-http",
        ),
        pytest.param(
            _made_up(body='<script src="/static/js/app.js" integrity="sha384-x"></script>'),
            "subresource-integrity",
            "sri-implemented-and-all-scripts-loaded-securely",
            135,
            id="sri-on-own-scripts",
        ),
    ],
)
def test_the_scorer_applies_each_rule(exchange, test, result, total):
    score = observatory.score(exchange)

    assert score.results[test] == result
    assert score.total == total, score.explain()
