"""The MDN HTTP Observatory's score, computed from one page's responses.

The rules are the Observatory's published ones, as its scanner implements them
(https://github.com/mdn/mdn-http-observatory, v1.5: ``src/scanner/index.js`` for the
total, ``src/grader/charts.js`` for each result's modifier, ``src/analyzer/tests/*.js``
for how a result is chosen; MDN's page "HTTP Observatory scoring methodology" says the
same in prose):

- a page starts at 100; each of the ten tests gives one result with a modifier;
- the negative modifiers always count; the positive ones (bonuses) only when the score
  with the penalties alone is 90 or more; the score is never below 0.

The scanner requests a host over HTTPS (the "auto" response), over plain HTTP (the
redirection test), and over HTTPS again with ``Origin:
https://http-observatory.security.mozilla.org`` (the CORS test), keeping the cookies
of all of them. :class:`Exchange` holds those three answers for one page.

What this does not do, and why it does not matter here: it reads the CSP from headers
only (ours is never in a ``<meta>``), takes one CSP header (more than one fails the
score as invalid, which ours never send), does not consult the HSTS preload list (no
+5 claimed), and tells "the same site" for SRI by the last two labels of the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

OBSERVATORY_ORIGIN = "https://http-observatory.security.mozilla.org"
MINIMUM_SCORE_FOR_EXTRA_CREDIT = 90
SIX_MONTHS = 15_552_000  # the scanner's "white lie" for 15768000

# src/analyzer/tests/csp.js
DANGEROUSLY_BROAD = {
    "ftp:",
    "http:",
    "https:",
    "*",
    "http://*",
    "http://*.*",
    "https://*",
    "https://*.*",
}
UNSAFE_INLINE = {"'unsafe-inline'", "data:"}
NONCES_HASHES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
PASSIVE_DIRECTIVES = ("img-src", "media-src")

# src/grader/charts.js: SCORE_TABLE, the results each test can give and their modifiers.
MODIFIERS = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-implemented-but-duplicate-directives": 0,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "csp-not-implemented-but-reporting-enabled": -25,
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-sameorigin-or-deny": 0,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    "cross-origin-resource-policy-header-invalid": -5,
    "cross-origin-resource-policy-implemented-with-cross-origin": 0,
    "cross-origin-resource-policy-implemented-with-same-origin": 10,
    "cross-origin-resource-policy-implemented-with-same-site": 10,
    "cross-origin-resource-policy-not-implemented": 0,
}


@dataclass(frozen=True)
class Answer:
    """One HTTP response: status, every header as sent (repeats kept), the body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str = ""

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def first(self, name: str) -> str | None:
        found = self.all(name)
        return found[0] if found else None


@dataclass(frozen=True)
class Exchange:
    """What the scanner asks of one page: over HTTPS, over HTTP, with a foreign Origin."""

    url: str  # the https:// address
    https: Answer
    http: Answer
    cors: Answer
    cors_origin: str = OBSERVATORY_ORIGIN
    # Answers earlier in the same session (signing in): the scanner's cookie jar keeps
    # what they set, and so does the score.
    earlier: tuple[Answer, ...] = ()

    def set_cookies(self) -> list[str]:
        answers = (*self.earlier, self.http, self.https, self.cors)
        return [raw for answer in answers for raw in answer.all("Set-Cookie")]


@dataclass
class Score:
    results: dict[str, str] = field(default_factory=dict)  # test -> result

    @property
    def modifiers(self) -> dict[str, int]:
        return {test: MODIFIERS[result] for test, result in self.results.items()}

    @property
    def uncurved(self) -> int:
        return 100 + sum(m for m in self.modifiers.values() if m < 0)

    @property
    def total(self) -> int:
        with_bonus = 100 + sum(self.modifiers.values())
        score = with_bonus if self.uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT else self.uncurved
        return max(score, 0)

    def explain(self) -> str:
        return ", ".join(
            f"{test}: {result} ({MODIFIERS[result]:+d})" for test, result in self.results.items()
        )


def score(exchange: Exchange) -> Score:
    csp_result, csp = content_security_policy(exchange)
    hsts = strict_transport_security(exchange)
    return Score(
        {
            "content-security-policy": csp_result,
            "cookies": cookies(exchange, hsts_passes=hsts in _HSTS_PASSING),
            "cross-origin-resource-sharing": cross_origin_resource_sharing(exchange),
            "redirection": redirection(exchange),
            "referrer-policy": referrer_policy(exchange),
            "strict-transport-security": hsts,
            "subresource-integrity": subresource_integrity(exchange),
            "x-content-type-options": x_content_type_options(exchange),
            "x-frame-options": x_frame_options(exchange, csp),
            "cross-origin-resource-policy": cross_origin_resource_policy(exchange),
        }
    )


# --- Content-Security-Policy (csp.js, cspParser.js) ----------------------------------


class InvalidPolicyError(ValueError):
    pass


def parse_policy(header: str) -> tuple[dict[str, set[str]], bool]:
    """Directives to their sources (lower-cased), and whether one repeats (other than
    the report directives, which the scanner lets repeat)."""
    directives: dict[str, set[str]] = {}
    duplicate = False
    for part in header.split(";"):
        tokens = part.strip().split()
        if not tokens:
            continue
        name, sources = tokens[0].lower(), {token.lower() for token in tokens[1:]}
        if not re.fullmatch(r"[a-z-]+", name):
            raise InvalidPolicyError(name)
        if name in directives:
            duplicate = duplicate or not name.startswith("report-")
            continue  # the first one wins, as in browsers
        # A directive with no source is 'none' (the scanner's parser says so too).
        directives[name] = sources or {"'none'"}
    return directives, duplicate


def content_security_policy(exchange: Exchange) -> tuple[str, dict[str, set[str]]]:
    headers = exchange.https.all("Content-Security-Policy")
    policies = [
        policy.strip() for header in headers for policy in header.split(",") if policy.strip()
    ]
    if not policies:
        if exchange.https.first("Content-Security-Policy-Report-Only"):
            return "csp-not-implemented-but-reporting-enabled", {}
        return "csp-not-implemented", {}
    if len(policies) > 1:
        return "csp-header-invalid", {}
    try:
        csp, duplicate = parse_policy(policies[0])
    except InvalidPolicyError:
        return "csp-header-invalid", {}
    https = exchange.url.startswith("https://")
    default = csp.get("default-src")
    object_src = set(csp.get("object-src") or default or {"*"})
    script_src = set(csp.get("script-src") or default or {"*"})
    style_src = set(csp.get("style-src") or default or {"*"})
    for sources in (script_src, style_src):
        if any(s.startswith(NONCES_HASHES) for s in sources):
            sources.discard("'unsafe-inline'")
    script_src, invalid = _strict_dynamic(script_src)
    result: str | None = "csp-header-invalid" if invalid else None
    active = [
        s
        for name, sources in csp.items()
        if name not in PASSIVE_DIRECTIVES and name != "script-src"
        for s in sources
    ] + list(script_src)
    passive = [s for name in PASSIVE_DIRECTIVES for s in (csp.get(name) or default or set())]

    # The first that applies, in the scanner's order.
    ordered = [
        (
            bool(
                script_src & (DANGEROUSLY_BROAD | UNSAFE_INLINE) or object_src & DANGEROUSLY_BROAD
            ),
            "csp-implemented-with-unsafe-inline",
        ),
        (
            https and any(s.startswith(("http:", "ftp:")) for s in active),
            "csp-implemented-with-insecure-scheme",
        ),
        ("'unsafe-eval'" in script_src | style_src, "csp-implemented-with-unsafe-eval"),
        (
            https and any(s.startswith(("http:", "ftp:")) for s in passive),
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
        ),
        (
            bool(style_src & (DANGEROUSLY_BROAD | UNSAFE_INLINE)),
            "csp-implemented-with-unsafe-inline-in-style-src-only",
        ),
        (default == {"'none'"}, "csp-implemented-with-no-unsafe-default-src-none"),
        (True, "csp-implemented-with-no-unsafe"),
    ]
    result = result or next(name for applies, name in ordered if applies)
    passing = {
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    }
    if result in passing and duplicate:
        result = "csp-implemented-but-duplicate-directives"
    return result, csp


def _strict_dynamic(script_src: set[str]) -> tuple[set[str], bool]:
    """With a nonce or hash, 'strict-dynamic' makes browsers ignore 'self',
    'unsafe-inline' and scheme sources; without one, the scanner calls it invalid."""
    if "'strict-dynamic'" not in script_src:
        return script_src, False
    if not any(s.startswith(NONCES_HASHES) for s in script_src):
        return script_src, True
    kept = {
        s
        for s in script_src
        if s not in ("'self'", "'unsafe-inline'")
        and not any(s.startswith(broad) for broad in DANGEROUSLY_BROAD)
    }
    return kept, False


# --- Cookies (cookies.js) ---------------------------------------------------------------

_COOKIE_GOODNESS = [
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
]


def _only_if_worse(new: str, current: str | None) -> str:
    if current is None or _COOKIE_GOODNESS.index(new) > _COOKIE_GOODNESS.index(current):
        return new
    return current


def _cookie(raw: str) -> tuple[str, dict[str, str | bool]]:
    name_value, *attributes = raw.split(";")
    parsed: dict[str, str | bool] = {}
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        parsed[key.strip().lower()] = value.strip() if _ else True
    return name_value.split("=", 1)[0].strip(), parsed


def cookies(exchange: Exchange, *, hsts_passes: bool) -> str:
    raws = exchange.set_cookies()
    result: str | None = None
    for raw in raws:
        for part in raw.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "samesite" and value.strip().lower() not in (
                "lax",
                "strict",
                "none",
            ):
                result = _only_if_worse("cookies-samesite-flag-invalid", result)
    if not raws:
        return "cookies-not-found"
    missing_samesite = False
    for raw in raws:
        name, flags = _cookie(raw)
        session = any(word in name.lower() for word in ("login", "sess"))
        anticsrf = "csrf" in name.lower()
        secure, httponly = bool(flags.get("secure")), bool(flags.get("httponly"))
        samesite = flags.get("samesite")
        if not secure and isinstance(samesite, str) and samesite.lower() == "none":
            result = _only_if_worse("cookies-samesite-flag-invalid", result)
        if not secure:
            result = _only_if_worse(
                "cookies-without-secure-flag-but-protected-by-hsts"
                if hsts_passes
                else "cookies-without-secure-flag",
                result,
            )
        if anticsrf and not samesite:
            result = _only_if_worse("cookies-anticsrf-without-samesite-flag", result)
        if session and not secure:
            result = _only_if_worse(
                "cookies-session-without-secure-flag-but-protected-by-hsts"
                if hsts_passes
                else "cookies-session-without-secure-flag",
                result,
            )
        if session and not httponly:
            result = _only_if_worse("cookies-session-without-httponly-flag", result)
        missing_samesite = missing_samesite or not samesite
    if result:
        return result
    if missing_samesite:
        return "cookies-secure-with-httponly-sessions"
    return "cookies-secure-with-httponly-sessions-and-samesite"


# --- CORS (cors.js) ----------------------------------------------------------------------


def cross_origin_resource_sharing(exchange: Exchange) -> str:
    allowed = exchange.cors.first("Access-Control-Allow-Origin")
    if not allowed:
        return "cross-origin-resource-sharing-not-implemented"
    allowed = allowed[:256].strip().lower()
    credentials = (exchange.cors.first("Access-Control-Allow-Credentials") or "").strip().lower()
    if allowed == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access"
    if allowed == exchange.cors_origin.lower() and credentials == "true":
        return "cross-origin-resource-sharing-implemented-with-universal-access"
    return "cross-origin-resource-sharing-implemented-with-restricted-access"


# --- Redirection (redirection.js) --------------------------------------------------------


def redirection(exchange: Exchange) -> str:
    answer = exchange.http
    location = answer.first("Location")
    if answer.status not in (301, 302, 303, 307, 308) or not location:
        return "redirection-missing"
    target = urlsplit(location)
    if target.scheme != "https":
        return "redirection-not-to-https"
    if target.hostname != urlsplit(exchange.url).hostname:
        return "redirection-off-host-from-http"
    return "redirection-to-https"


# --- Referrer-Policy (referrer-policy.js) ------------------------------------------------

_PRIVATE = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
_UNSAFE = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")


def referrer_policy(exchange: Exchange) -> str:
    headers = exchange.https.all("Referrer-Policy")
    if not headers:
        return "referrer-policy-not-implemented"
    valid = [
        p.strip().lower()
        for p in ", ".join(headers).split(",")
        if p.strip().lower() in (*_PRIVATE, *_UNSAFE)
    ]
    policy = valid[-1] if valid else ""
    if policy in _PRIVATE:
        return "referrer-policy-private"
    if policy in _UNSAFE:
        return "referrer-policy-unsafe"
    return "referrer-policy-header-invalid"


# --- Strict-Transport-Security (strict-transport-security.js) ----------------------------

_HSTS_PASSING = ("hsts-implemented-max-age-at-least-six-months", "hsts-preloaded")


def strict_transport_security(exchange: Exchange) -> str:
    if not exchange.url.startswith("https://"):
        return "hsts-not-implemented-no-https"
    headers = exchange.https.all("Strict-Transport-Security")
    if not headers:
        return "hsts-not-implemented"
    header = headers[0][:1024]
    if "," in header:
        return "hsts-header-invalid"
    max_age = None
    for parameter in (p.strip().lower() for p in header.split(";")):
        if parameter.startswith("max-age="):
            digits = re.match(r"\d+", parameter[8:128])
            max_age = int(digits.group()) if digits else None
    if max_age is None:
        return "hsts-header-invalid"
    if max_age < SIX_MONTHS:
        return "hsts-implemented-max-age-less-than-six-months"
    return "hsts-implemented-max-age-at-least-six-months"


# --- Subresource integrity (subresource-integrity.js) ------------------------------------


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))


def _site(host: str | None) -> str:
    return ".".join((host or "").split(".")[-2:])


_SRI_GOODNESS = [
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
]


def _sri_worse(new: str, current: str | None) -> str:
    if current is None or _SRI_GOODNESS.index(new) > _SRI_GOODNESS.index(current):
        return new
    return current


def subresource_integrity(exchange: Exchange) -> str:
    mime = (exchange.https.first("Content-Type") or "").split(";")[0].strip().lower()
    if mime and mime not in ("text/html", "application/xhtml+xml"):
        return "sri-not-implemented-response-not-html"
    parser = _Scripts()
    parser.feed(exchange.https.body)
    if not parser.scripts:
        return "sri-not-implemented-but-no-scripts-loaded"
    page_site = _site(urlsplit(exchange.url).hostname)
    result: str | None = None
    foreign = False
    for script in parser.scripts:
        src = script.get("src")
        if not src:
            continue
        integrity = script.get("integrity")
        relative_protocol = src.startswith("//") and not src.startswith("///")
        full = re.match(r"https?://", src) is not None
        relative_origin = not relative_protocol and not full
        same_site = (
            relative_protocol or relative_origin or _site(urlsplit(src).hostname) == page_site
        )
        secure_origin = relative_origin or (same_site and not relative_protocol)
        secure_scheme = (full and src.startswith("https://")) or (
            relative_origin and exchange.url.startswith("https://")
        )
        if not secure_origin:
            foreign = True
            if integrity and not secure_scheme:
                result = _sri_worse(
                    "sri-implemented-but-external-scripts-not-loaded-securely", result
                )
            elif not integrity and secure_scheme:
                result = _sri_worse(
                    "sri-not-implemented-but-external-scripts-loaded-securely", result
                )
            elif not integrity:
                result = _sri_worse(
                    "sri-not-implemented-and-external-scripts-not-loaded-securely", result
                )
        elif integrity and secure_scheme and result is None:
            result = "sri-implemented-and-all-scripts-loaded-securely"
    if result:
        return result
    if foreign:
        return "sri-implemented-and-external-scripts-loaded-securely"
    return "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"


# --- X-Content-Type-Options, X-Frame-Options, CORP ---------------------------------------


def x_content_type_options(exchange: Exchange) -> str:
    header = exchange.https.first("X-Content-Type-Options")
    if header is None:
        return "x-content-type-options-not-implemented"
    if header[:256].strip().lower() == "nosniff":
        return "x-content-type-options-nosniff"
    return "x-content-type-options-header-invalid"


def x_frame_options(exchange: Exchange, csp: dict[str, set[str]]) -> str:
    if "frame-ancestors" in csp:
        return "x-frame-options-implemented-via-csp"
    header = exchange.https.first("X-Frame-Options")
    if header is None:
        return "x-frame-options-not-implemented"
    value = header[:1024].strip().lower()
    if value in ("deny", "sameorigin"):
        return "x-frame-options-sameorigin-or-deny"
    if value.startswith("allow-from"):
        return "x-frame-options-allow-from-origin"
    return "x-frame-options-header-invalid"


def cross_origin_resource_policy(exchange: Exchange) -> str:
    header = exchange.https.first("Cross-Origin-Resource-Policy")
    if not header:
        return "cross-origin-resource-policy-not-implemented"
    return {
        "same-site": "cross-origin-resource-policy-implemented-with-same-site",
        "same-origin": "cross-origin-resource-policy-implemented-with-same-origin",
        "cross-origin": "cross-origin-resource-policy-implemented-with-cross-origin",
    }.get(header[:256].strip().lower(), "cross-origin-resource-policy-header-invalid")
