import pytest
from django.db import DatabaseError


def test_healthz_needs_no_database(client):
    # No db fixture: any query would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_signing_key(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "signing_key": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_json_when_the_database_is_down(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert response.json()["checks"]["database"] == "unavailable"


def test_ping_is_unauthenticated_json(client):
    response = client.get("/api/ping/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
