"""Password re-checks of a signed-in person, limited per account whatever the parallelism.

The tokens page and the step-up page ask a signed-in person for their password again.
A stolen session cookie must not turn them into a password oracle: at most
``MAX_WRONG`` wrong passwords are evaluated per account per ``WINDOW_SECONDS``, then
the session is signed out. The count lives in Django's cache, keyed on the account, and
a check *reserves* its place before the password is even hashed (``cache.add`` then
``cache.incr``, atomic in Redis and in the local-memory cache alike): of any number of
parallel requests, at most ``MAX_WRONG`` get a verdict, the rest are refused unheard.
A right password gives its place back. A count in the session (read, add one, write
back) lost most of a burst of parallel requests: the last writer won.

A fresh sign-in (which needs the password, or a link sent to the account's address)
starts the count afresh, as the session-held count did.

With the cache unreachable nothing is evaluated (``Unavailable``): these pages wait,
rather than let guesses through unlimited.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.core.cache import caches
from django.dispatch import receiver
from django.http import HttpRequest

import audit
from audit.services import record_capped

logger = logging.getLogger(__name__)

MAX_WRONG = 5
WINDOW_SECONDS = 15 * 60


class Unavailable(Exception):  # noqa: N818 (the outcome the page shows)
    """The counter cannot be reached: nothing may be evaluated."""


def _key(purpose: str, user_id: Any) -> str:
    return f"password-recheck:{purpose}:{user_id}"


class Attempt:
    """One password check's place in ``purpose``'s count for ``user_id``.

    ``allowed`` is False when the account's wrong passwords (and checks in flight)
    already fill the window: the password must then not be checked at all.
    ``failures`` is this attempt's place: the number of wrong passwords so far,
    this one included if it turns out wrong.
    """

    def __init__(self, purpose: str, user_id: Any) -> None:
        self._cache = caches[settings.RATE_LIMIT_CACHE]
        self._key = _key(purpose, user_id)
        try:
            self._cache.add(self._key, 0, WINDOW_SECONDS)
            try:
                self.failures = int(self._cache.incr(self._key))
            except ValueError:  # expired between add and incr: a new window
                self._cache.add(self._key, 0, WINDOW_SECONDS)
                self.failures = int(self._cache.incr(self._key))
        except Exception as exc:
            logger.warning("accounts.password-recheck.cache-unavailable", exc_info=True)
            raise Unavailable from exc
        self.allowed = self.failures <= MAX_WRONG

    @property
    def last(self) -> bool:
        """Whether this attempt, if wrong, uses up the window (the session then ends)."""
        return self.failures >= MAX_WRONG

    def succeeded(self) -> None:
        """The password was right: give the place back."""
        try:
            self._cache.decr(self._key)
        except Exception:  # expired meanwhile (nothing to give back) or unreachable
            logger.info("accounts.password-recheck.release-skipped", exc_info=True)


def forget(user_id: Any, *purposes: str) -> None:
    """Start ``user_id``'s counts afresh (a new sign-in proved the password again)."""
    try:
        caches[settings.RATE_LIMIT_CACHE].delete_many([_key(p, user_id) for p in purposes])
    except Exception:
        logger.warning("accounts.password-recheck.cache-unavailable", exc_info=True)


# Every page whose password re-check is counted here.
PURPOSES = ("api_token", "step_up")


@receiver(user_logged_in, dispatch_uid="accounts_guesses_forget_at_sign_in")
def _forget_at_sign_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    forget(user.pk, *PURPOSES)


def sign_out(request: HttpRequest, user: Any, failures: int, *, heard: bool, action: str) -> None:
    """End the session of a person out of password guesses, audited as ``action``. The
    request whose wrong password used up the window is audited in full; requests
    refused unheard (in parallel with it, or after it) are capped."""
    data = {"failures_in_window": min(failures, MAX_WRONG), "heard": heard}
    if heard:
        audit.record(action, category=audit.Category.SECURITY, actor=user, target=user, data=data)
    else:
        record_capped(action, category=audit.Category.SECURITY, actor=user, data=data)
    logout(request)
