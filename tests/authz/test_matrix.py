"""The authorization matrix (issue 14, point 2): every route, asked by everyone.

The test walks the whole URL configuration (pages, API, admin, and the sandbox the
test profile mounts) and requests each route as each person of the cast
(tests/authz/rules.py ``PRINCIPALS``), by GET and by the state-changing methods, with
tenant B's objects in the path. It fails on any 5xx, on a 2xx that the route's rule
does not grant (another tenant's object, a staff group reaching what it should not),
on a refusal that is a redirect anywhere but a sign-in or step-up page (a write that
succeeded and redirected looks like that), on a 200 a rule requires and does not get,
on any answer to tenant A or the public that shows tenant B's booking or client, and
on any route no rule classifies.

Each request runs in a savepoint that is rolled back, and the browser's cookies are
put back after it, so one person's request never changes what the next one sees; a
refused request that ends or replaces the session fails. Inside the savepoint, the
domain's records are compared before and after every request but the writes a rule
grants on the site: a GET, a refused write or an empty admin form that changed a
booking, a payment, a token or a person fails too, whatever it answered.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from accounts.models import (
    ApiToken,
    Builder,
    BuilderMembership,
    DataSubjectRequest,
    User,
)
from bookings.models import Booking, Drift, EventType
from payments.models import Dispute, Payment, Refund, RefundApproval
from tests.authz.conftest import World
from tests.authz.rules import PRINCIPALS, RULES, Rule, rule_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

WRITES = ("POST",)
API_WRITES = ("POST", "PUT", "PATCH", "DELETE")

# Who must never see tenant B's booking or client in an answer.
OUTSIDERS = ("anonymous", "client_a", "builder_a")

# Where a refusal may send a browser: the sign-in pages, step-up, two-factor set-up.
REFUSAL_PAGES = ("/accounts/login/", "/admin/login/", "/accounts/step-up/", "/accounts/two-factor/")

# route -> the bug it shows, reported to the lead: the case is an expected failure
# until the bug is fixed, and then fails (strict) so that this entry goes.
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern from the root, as rules.py matches it
    name: str | None
    callback: Any


def _walk(resolver: URLResolver, prefix: str = "") -> list[Route]:
    routes = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            routes += _walk(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            routes.append(Route(prefix + str(entry.pattern), entry.name, entry.callback))
    return routes


ROUTES = _walk(get_resolver())

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def concrete(route: Route, rule: Rule, world: World) -> str:
    """The route's path with each parameter filled from the rule's ``fill``; checked
    to resolve back to the same view, so that a wrong fill cannot test another route."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in rule.fill, f"route {route.pattern}: its rule has no fill for {name!r}"
        return world.value(rule.fill[name])

    path = _CONVERTER.sub(value, _GROUP.sub(value, route.pattern))
    path = "/" + path.replace("^", "").replace("$", "").replace("/?", "/")
    match = resolve(path)
    assert match.func == route.callback, (route.pattern, path, match.route)
    return path


def test_every_route_has_a_rule_and_every_rule_a_route() -> None:
    unclassified = [r.pattern for r in ROUTES if rule_for(r.pattern) is None]
    assert not unclassified, "\n".join(
        f"new route {pattern}: add a rule in tests/authz/rules.py" for pattern in unclassified
    )
    used = {rule_for(r.pattern)[0] for r in ROUTES}  # type: ignore[index]
    stale = [pattern for index, (pattern, _) in enumerate(RULES) if index not in used]
    assert not stale, f"rules that classify no route (remove them): {stale}"


def test_the_walk_sees_every_part_of_the_site() -> None:
    """Pages, API, admin, webhooks and (mounted in the test profile) the sandbox."""
    prefixes = {r.pattern.split("/", 1)[0] for r in ROUTES}
    assert {"accounts", "api", "admin", "webhooks", "bookings", "builder", "sandbox"} <= prefixes
    assert len(ROUTES) > 200


WATCHED = (
    Builder,
    BuilderMembership,
    DataSubjectRequest,
    ApiToken,
    EventType,
    Booking,
    Payment,
    Refund,
    RefundApproval,
    Dispute,
    Drift,
)


def _records() -> list[Any]:
    """The domain's records as they stand (the world is small: every row)."""
    rows: list[Any] = [list(model.objects.order_by("pk").values()) for model in WATCHED]
    rows.append(
        list(
            User.objects.order_by("pk").values_list(
                "pk", "email", "password", "is_active", "is_staff", "is_superuser"
            )
        )
    )
    return rows


def _fingerprint_sql() -> str:
    """One query for a fingerprint of what ``_records`` reads (each row as PostgreSQL
    prints it, in primary-key order). The matrix asks it before and after thousands of
    requests: one round trip, where ``_records`` takes twelve and decrypts."""

    def digest(table: str, pk: str, row: str) -> str:
        quoted = connection.ops.quote_name
        return (
            f"(SELECT md5(coalesce(string_agg({row}, '|' ORDER BY t.{quoted(pk)}), ''))"  # noqa: S608 - model names, no input
            f" FROM {quoted(table)} t)"
        )

    parts = [digest(m._meta.db_table, m._meta.pk.column, "t::text") for m in WATCHED]
    people = "concat_ws(',', t.id, t.email, t.password, t.is_active, t.is_staff, t.is_superuser)"
    parts.append(digest(User._meta.db_table, User._meta.pk.column, people))
    return "SELECT " + ", ".join(parts)


def _fingerprint() -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(_fingerprint_sql())
        return tuple(cursor.fetchone())


def _harness_savepoint() -> Any:
    """A savepoint that the code under test must see as the test's own transaction,
    not one it opened: calls to providers are refused inside a transaction of the
    code's own (config.outgoing), and the views call them with none open."""
    savepoint = transaction.atomic()
    savepoint._from_testcase = True  # Django's mark for a test case's own transactions
    return savepoint


def _ask(browser: Client, method: str, path: str, *, api: bool, watch: bool) -> tuple[Any, bool]:
    """One request, its writes rolled back (a savepoint in the test's transaction) and
    the browser's cookies put back; with ``watch``, whether it changed the domain's
    records."""
    cookies = copy.deepcopy(browser.cookies)  # a sign-out or a step-up would change them
    after = None
    try:
        with _harness_savepoint():
            before = _fingerprint() if watch else None
            if api:
                answer = browser.generic(method, path, "{}", content_type="application/json")
            else:
                answer = browser.generic(
                    method, path, "", content_type="application/x-www-form-urlencoded"
                )
            if watch and _fingerprint() != before:
                # A row was written, maybe saved again as it was (new ciphertext, same
                # values): compare the values, after and (rolled back) before.
                after = _records()
            transaction.set_rollback(True)
    finally:
        browser.cookies = cookies
        # Counters (rate limits, password guesses) are not rolled back with the rows.
        caches[settings.RATE_LIMIT_CACHE].clear()
    changed = after is not None and after != _records()
    return answer, changed


def _session_changed(browser: Client, answer: Any) -> bool:
    """Whether ``answer`` replaced or deleted the signed-in browser's session cookie (a
    sign-out, a new session): put back by ``_ask``, so looked for here. Sending the
    same session again (a page that stored something in it) is no change."""
    name = settings.SESSION_COOKIE_NAME
    if name not in browser.cookies or name not in answer.cookies:
        return False
    return answer.cookies[name].value != browser.cookies[name].value


def _provider_down(answer: Any) -> bool:
    """The API's documented answer when Stripe or Calendly does not answer, as in this
    world, where neither runs: only someone the rule lets write can get that far."""
    if answer.status_code != 503 or answer.get("Content-Type") != "application/json":
        return False
    return answer.json().get("error", {}).get("code") == "provider_unavailable"


def _judge(rule: Rule, who: str, method: str, answer: Any) -> str | None:
    status = answer.status_code
    if status >= 500 and not (rule.allows(who, method) and _provider_down(answer)):
        return f"{status}"
    if method == "GET" and who in rule.must_read and status != 200:
        return f"{status}, but {rule.kind} says {who} reads it (200)"
    if rule.allows(who, method):
        return None
    if 200 <= status < 300:
        return f"{status}, but {rule.kind} refuses {who}"
    if 300 <= status < 400:
        where = urlsplit(answer.get("Location", "")).path
        redirect = rule.redirects and re.fullmatch(rule.redirects, where)
        if not (where.startswith(REFUSAL_PAGES) or redirect):
            return f"{status} to {where!r}: a refusal leads to sign-in or step-up"
    return None


def _leak(world: World, who: str, answer: Any) -> str | None:
    """Tenant A and the public are never shown tenant B's booking or client, in any
    answer: a list is filtered, not only the object pages refused."""
    if who not in OUTSIDERS or answer.streaming:
        return None
    content = answer.content.decode(errors="replace")
    shown = [label for label, secret in world.tenant_b_secrets.items() if secret in content]
    return f"{answer.status_code} shows tenant B's {', '.join(shown)}" if shown else None


def _cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        found = rule_for(route.pattern)
        if found is None:
            continue  # test_every_route_has_a_rule_and_every_rule_a_route names it
        marks = []
        if route.pattern in KNOWN_BUGS:
            marks.append(
                pytest.mark.xfail(strict=True, reason=f"{KNOWN_BUGS[route.pattern]}: reported")
            )
        cases.append(pytest.param(route, found[1], id=route.pattern, marks=marks))
    return cases


@pytest.mark.parametrize(("route", "rule"), _cases())
def test_the_route_answers_everyone_as_its_rule_says(
    route: Route, rule: Rule, world: World
) -> None:
    path = concrete(route, rule, world)
    methods = ("GET", *(API_WRITES if rule.api else WRITES))
    wrong = []
    for who in PRINCIPALS:
        for method in methods:
            granted_write = method != "GET" and rule.allows(who, method)
            watch = not granted_write or (route.pattern.startswith("admin/") and not rule.button)
            try:
                answer, changed = _ask(world.browsers[who], method, path, api=rule.api, watch=watch)
            except Exception as exc:  # noqa: BLE001 - a view that raises is a 500: name it
                wrong.append(f"{who} {method} {path}: raised {type(exc).__name__}: {exc}")
                continue
            verdict = _judge(rule, who, method, answer) or _leak(world, who, answer)
            if not granted_write and _session_changed(world.browsers[who], answer):
                verdict = f"{answer.status_code}, and it ended or changed the session" + (
                    f"; {verdict}" if verdict else ""
                )
            if changed:
                verdict = f"{answer.status_code}, and it changed records" + (
                    f"; {verdict}" if verdict else ""
                )
            if verdict:
                wrong.append(f"{who} {method} {path}: {verdict}")
    assert not wrong, f"{route.pattern} ({rule.kind}):\n" + "\n".join(wrong)
