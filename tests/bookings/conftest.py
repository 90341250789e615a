"""The Calendly client against the Calendly sandbox, over real HTTP (``live_server``)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bookings.calendly import CalendlyClient
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType

API_PATH = "/sandbox/calendly/api"


@pytest.fixture
def api_base(live_server: Any, settings: Any) -> Iterator[str]:
    settings.CALENDLY_API_BASE = live_server.url + API_PATH
    yield settings.CALENDLY_API_BASE
    # A connection kept alive only by a reference cycle (an exception's traceback)
    # closes now, while the live server still shares the test database with its
    # request threads, rather than at exit.
    gc.collect()


@pytest.fixture
def calendly(api_base: str) -> Iterator[CalendlyClient]:
    with CalendlyClient() as client:
        yield client


@pytest.fixture
def make_client(api_base: str) -> Iterator[Callable[..., CalendlyClient]]:
    """CalendlyClient(**options), closed after the test."""
    made: list[CalendlyClient] = []

    def make(**options: Any) -> CalendlyClient:
        made.append(CalendlyClient(**options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def event_type(transactional_db: None) -> EventType:
    return services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
        redirect_url="https://slotpay.example/bookings/scheduled/",
        question="What should we discuss?",
    )
