"""What the API answers when the shared cache (Redis, `CACHE_URL`) is unreachable.

Sign-in counts attempts in the cache, so with Redis down it cannot run. The
contract says no request to /api/ gets a 500; the honest answer is the one a
database outage gets: 503 JSON with Retry-After.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from conftest import obtain

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def test_sign_in_with_the_shared_cache_down_is_a_503_json(settings: Any, user: Any) -> None:
    settings.CACHES = UNREACHABLE_REDIS
    response = obtain(APIClient(raise_request_exception=False))
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert "Retry-After" in response


def test_endpoints_that_do_not_count_attempts_work_with_the_cache_down(settings: Any, tokens: dict[str, str]) -> None:
    settings.CACHES = UNREACHABLE_REDIS
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get("/api/me/").status_code == 200
    assert client.post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 200
