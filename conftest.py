"""Fixtures shared by every test: users, API clients, a movable clock, a clean key ring."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_keyring() -> Iterator[None]:
    """Each test sees the key ring of its own database state."""
    from tokens.keyring import keyring

    keyring.reset()
    yield
    keyring.reset()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with empty sign-in throttling counters (the cache outlives tests)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_hasher(settings: Any, request: pytest.FixtureRequest) -> None:
    """Hash with a cheap Argon2 cost in tests; tests of the hasher itself opt out."""
    if "real_hasher" in request.keywords:
        return
    settings.ARGON2_MEMORY_COST_KIB = 1024
    settings.ARGON2_TIME_COST = 1


class Clock:
    """A stand-in for tokens.clock.now that tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from django.utils import timezone

    fake = Clock(timezone.now())
    monkeypatch.setattr("tokens.clock.now", fake)
    return fake


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user(db: None) -> Any:
    from accounts.models import User

    return User.objects.create_user(email="ada@example.com", password=PASSWORD, name="Ada Lovelace")


@pytest.fixture
def staff_user(db: None) -> Any:
    from accounts.models import User

    return User.objects.create_user(email="staff@example.com", password=PASSWORD, name="Staff", is_staff=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def obtain(client: APIClient, email: str = "ada@example.com", password: str = PASSWORD, **extra: Any) -> Any:
    """Sign in through the API and return the response."""
    return client.post("/api/token/", {"email": email, "password": password}, format="json", **extra)


@pytest.fixture
def tokens(api_client: APIClient, user: Any) -> dict[str, str]:
    """A fresh token pair for `user`."""
    response = obtain(api_client)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def auth_client(tokens: dict[str, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client
