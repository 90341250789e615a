"""The request's client address and id, read the same way everywhere."""

from __future__ import annotations

import ipaddress
import re
import uuid
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.http import HttpRequest

# Set by RequestContextMiddleware for the length of one request; read by logging
# and by audit.record() so that neither needs the request passed down to it.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
current_client_ip: ContextVar[str | None] = ContextVar("client_ip", default=None)
# The signed-in user behind the request (set after authentication by
# config.middleware.ActorContextMiddleware): who really acted, for checks and audit
# entries written far from the view, such as a model's save().
current_user: ContextVar[Any] = ContextVar("current_user", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_from(header: str | None) -> str:
    """Keep a well-formed incoming X-Request-ID (a proxy's), else make a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, trusting X-Forwarded-For only as far as our proxies.

    With ``TRUSTED_PROXY_COUNT = n`` the client is the n-th address from the right of
    X-Forwarded-For (each proxy appends the address it received from); with 0 the
    header is ignored, because anyone can send it.
    """
    address = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= count:
            address = forwarded[-count]
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def truncate_ip(address: str | None) -> str | None:
    """Pseudonymise an address for storage: /24 for IPv4, /48 for IPv6."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
