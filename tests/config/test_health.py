"""Probes: /healthz says the process answers, /readyz that the database and broker do."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings


def test_healthz_answers_json_without_touching_the_database(client):
    # No ``db`` fixture: any query here would raise.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_refuse_writes(client, db, path, method):
    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.django_db
def test_readyz_is_ok_with_the_database_reachable(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["database"] is True


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz_pings_the_broker_when_there_is_one(client):
    assert settings.REDIS_URL

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "broker": True}}


@pytest.mark.django_db
@override_settings(REDIS_URL="amqp://127.0.0.1:1/")
def test_readyz_is_503_when_the_broker_url_is_not_redis(client):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] is False


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_is_503_when_the_broker_is_down(client):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": True, "broker": False},
    }
    assert "no-store" in response["Cache-Control"]


def test_readyz_is_503_when_the_database_refuses(client):
    # Without the ``db`` fixture pytest-django refuses every query, as a database
    # that is down would: the probe must answer, not crash.
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False
