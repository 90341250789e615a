"""The system check that keeps credentials away from any-origin CORS.

With ``CORS_ALLOW_CREDENTIALS`` on, an allowed origin's scripts may call the API with the
visitor's cookies. django-cors-headers echoes the caller's origin rather than sending
``*``, so "allow all" with credentials is not refused by browsers: it would let every
website act as the signed-in visitor. Registered from config.apps (SiteConfig.ready).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

# Origins no allow-list means to admit: an unrelated site, and "null" (sandboxed frames,
# file: pages, some redirects), which any attacker can make a browser send.
FOREIGN_ORIGINS = ("https://attacker.invalid", "http://attacker.invalid", "null")


def _setting(name: str, alias: str, default: Any) -> Any:
    """A django-cors-headers setting, under its current or its older name."""
    return getattr(settings, name, getattr(settings, alias, default))


def wildcard_origins() -> list[str]:
    """What in the CORS settings admits any origin, described for the check's message."""
    found = []
    if _setting("CORS_ALLOW_ALL_ORIGINS", "CORS_ORIGIN_ALLOW_ALL", False):
        found.append("CORS_ALLOW_ALL_ORIGINS is on")
    origins: Iterable[str] = _setting("CORS_ALLOWED_ORIGINS", "CORS_ORIGIN_WHITELIST", ())
    for origin in origins:
        if "*" in str(origin) or str(origin).strip().lower() == "null":
            found.append(f"CORS_ALLOWED_ORIGINS holds {origin!r}")
    regexes: Iterable[str | re.Pattern[str]] = _setting(
        "CORS_ALLOWED_ORIGIN_REGEXES", "CORS_ORIGIN_REGEX_WHITELIST", ()
    )
    for regex in regexes:
        try:
            # As django-cors-headers matches: re.match, anchored at the start only.
            admits = [origin for origin in FOREIGN_ORIGINS if re.match(regex, origin)]
        except (re.error, TypeError):
            continue  # django-cors-headers' own checks report a malformed pattern
        if admits:
            pattern = regex.pattern if isinstance(regex, re.Pattern) else regex
            found.append(f"CORS_ALLOWED_ORIGIN_REGEXES entry {pattern!r} admits {admits[0]}")
    return found


@register(Tags.security, deploy=False)
def check_cors_credentials(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if not getattr(settings, "CORS_ALLOW_CREDENTIALS", False):
        return []
    return [
        Error(
            f"CORS_ALLOW_CREDENTIALS is on and {reason}: any website could call the API "
            "as the signed-in visitor.",
            hint="List each trusted origin in CORS_ALLOWED_ORIGINS "
            "(https://app.example.com), or turn CORS_ALLOW_CREDENTIALS off.",
            id="slotpay.E030",
        )
        for reason in wildcard_origins()
    ]
