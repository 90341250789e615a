"""Who may post to ``/webhooks/<name>/<token>/``: filled by the provider apps, read by
the endpoint.

The webhooks app knows no provider. The app that owns a provider's client registers
one :class:`WebhookProvider` from its ``AppConfig.ready()``::

    providers.register(
        WebhookProvider(
            name="stripe",
            signature_header="Stripe-Signature",
            secrets=setting("STRIPE_WEBHOOK_SECRETS"),
            path_token=setting("STRIPE_WEBHOOK_PATH_TOKEN"),
            ip_allowlist=setting("STRIPE_WEBHOOK_IP_ALLOWLIST"),
            verify=verify_signature,
            envelope=envelope,
        )
    )

The contract:

- ``verify(body, header, secrets)`` checks the signature header (``None`` when it is
  missing) against every secret (several while one rolls) and the signature's age
  (``webhooks.verification.check_timestamp``). It runs before the body is parsed, on
  whatever anyone sent, so it raises nothing but ``webhooks.verification.Rejected``;
  ``signature_parts`` parses the usual ``t=<unix>,v1=<hex>`` header strictly.
- ``envelope(data)`` takes the parsed JSON (any JSON value, at most 64 levels deep),
  validates what the pipeline and the handlers rely on (``webhooks.schemas``), and
  returns the event type and the dedup key: the same event, however often it is
  delivered, must give the same key. It raises ``webhooks.schemas.SchemaError``
  (answered as ``schema_invalid``) or ``Rejected``, nothing else.
- The settings are read through callables at every delivery, so a changed setting
  (a test's override) applies at once. An empty path token disables the endpoint.

A name no app registered is Django's ordinary 404, as a wrong path token is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from webhooks.schemas import Envelope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A URL segment, and at most WebhookEvent.provider's 16 characters.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,15}")


@dataclass(frozen=True)
class WebhookProvider:
    """One provider's endpoint: where its settings are, how its deliveries are signed,
    and what its envelope must hold."""

    name: str
    signature_header: str
    secrets: Callable[[], Sequence[str]]
    path_token: Callable[[], str]
    ip_allowlist: Callable[[], Sequence[Network]]  # empty: any source address
    verify: Callable[[bytes, str | None, Sequence[str]], None]
    envelope: Callable[[Any], Envelope]


def setting(name: str) -> Callable[[], Any]:
    """A callable that reads ``settings.<name>`` when called, not when registered."""
    return lambda: getattr(settings, name)


class ProviderRegistry:
    def __init__(self) -> None:
        self._providers: dict[str, WebhookProvider] = {}

    def register(self, provider: WebhookProvider) -> None:
        """Add ``provider``; registering the same one again changes nothing."""
        if not _NAME.fullmatch(provider.name):
            raise ImproperlyConfigured(
                f"{provider.name!r} is not a webhook provider name (a-z, 0-9, _; 16 at most)"
            )
        existing = self._providers.get(provider.name)
        if existing is not None and existing is not provider:
            raise ImproperlyConfigured(f"a webhook provider {provider.name} is already registered")
        self._providers[provider.name] = provider

    def unregister(self, name: str) -> None:
        self._providers.pop(name, None)

    def get(self, name: str) -> WebhookProvider | None:
        return self._providers.get(name)

    def __getitem__(self, name: str) -> WebhookProvider:
        return self._providers[name]

    def names(self) -> list[str]:
        return sorted(self._providers)


providers = ProviderRegistry()
