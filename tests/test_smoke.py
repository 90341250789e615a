import pytest


@pytest.mark.django_db
def test_home_and_health_answer(client):
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 200
