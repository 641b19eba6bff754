"""Sign-in throttling: LOGIN_RATE per client address and per account, on the API, the login page and the admin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from rest_framework.test import APIClient

from conftest import PASSWORD, obtain
from tokens.models import AuthEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
WRONG = "not the password at all"


@pytest.fixture(autouse=True)
def _rate(settings: Any) -> None:
    settings.LOGIN_RATE = "3/min"


def attempt(email: str = "ada@example.com", password: str = WRONG, **extra: Any) -> Any:
    return obtain(APIClient(), email=email, password=password, **extra)


def test_api_answers_429_json_with_retry_after_per_address(user, clock):
    for i in range(3):
        assert attempt(f"nobody{i}@example.com").status_code == 401
    response = attempt("someone-else@example.com")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["retry_after"] == int(response["Retry-After"])


def test_api_counts_per_account_across_addresses(user):
    for i in range(3):
        assert attempt("Ada@Example.com ", REMOTE_ADDR=f"198.51.100.{i + 1}").status_code == 401
    # A fourth address, the same account (spelled differently): refused.
    assert attempt("ada@example.com", REMOTE_ADDR="198.51.100.77").status_code == 429
    # Another account from a fresh address is not affected.
    assert attempt("grace@example.com", REMOTE_ADDR="198.51.100.78").status_code == 401


def test_unknown_accounts_are_counted_like_real_ones(db):
    for _ in range(3):
        attempt("ghost@example.com", REMOTE_ADDR=f"198.51.100.{uuid.uuid4().int % 200 + 1}")
    assert attempt("ghost@example.com", REMOTE_ADDR="192.0.2.200").status_code == 429


def test_successful_sign_ins_count_too(user):
    for _ in range(3):
        assert attempt(password=PASSWORD).status_code == 200
    assert attempt(password=PASSWORD).status_code == 429


def test_x_forwarded_for_does_not_make_a_new_address(user):
    for i in range(3):
        attempt(f"n{i}@example.com", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert attempt("n9@example.com", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_ipv6_addresses_count_per_64(user):
    for i in range(3):
        attempt(f"v{i}@example.com", REMOTE_ADDR=f"2001:db8:1:2::{i + 1}")
    assert attempt("v9@example.com", REMOTE_ADDR="2001:db8:1:2:ffff::9").status_code == 429
    assert attempt("v9@example.com", REMOTE_ADDR="2001:db8:1:3::1").status_code == 401


def test_the_window_moves_with_the_clock(user, clock):
    for i in range(3):
        attempt(f"w{i}@example.com")
    assert attempt("w9@example.com").status_code == 429
    clock.advance(seconds=61)
    assert attempt(password=PASSWORD).status_code == 200


def test_only_sign_in_posts_are_counted(user, password):
    client = APIClient()
    for _ in range(5):
        assert client.get("/api/token/").status_code == 405
        assert client.post("/api/token/verify/", {"token": "x"}, format="json").status_code == 401
    assert attempt(password=password).status_code == 200


def test_throttled_attempt_is_audited_once_per_window_and_never_hashes(user, clock):
    for _ in range(3):
        attempt()
    failed_before = AuthEvent.objects.filter(kind=AuthEvent.Kind.SIGN_IN_FAILED).count()
    for i in range(4):
        assert attempt(REMOTE_ADDR=f"203.0.113.{50 + i}").status_code == 429
    # Refused before authenticate(): no new failed sign-in.
    assert AuthEvent.objects.filter(kind=AuthEvent.Kind.SIGN_IN_FAILED).count() == failed_before
    events = AuthEvent.objects.filter(kind=AuthEvent.Kind.SIGN_IN_THROTTLED)
    assert events.count() == 1
    event = events.get()
    assert event.email == "ada@example.com"
    assert event.ip == "203.0.113.50"  # the first refusal of the window
    assert event.data == {"scope": "sign_in_account", "rate": "3/min"}
    clock.advance(seconds=61)
    for i in range(4):
        attempt(REMOTE_ADDR=f"203.0.113.{60 + i}")
    assert events.count() == 2


def test_login_page_answers_429_with_the_message(client, user):
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "ada@example.com", "password": WRONG})
        assert response.status_code == 200
    response = client.post("/accounts/login/", {"username": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "Too many sign-in attempts" in response.content.decode()
    assert response["Content-Type"].startswith("text/html")
    assert "_auth_user_id" not in client.session


def test_login_page_get_is_never_throttled(client, db):
    for _ in range(6):
        assert client.get("/accounts/login/").status_code == 200


def test_admin_login_answers_429_with_the_message(client, staff_user):
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "staff@example.com", "password": WRONG})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "staff@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session


def test_the_three_sign_in_doors_share_one_account_counter(client, user):
    client.post("/accounts/login/", {"username": "ada@example.com", "password": WRONG}, REMOTE_ADDR="192.0.2.1")
    client.post("/admin/login/", {"username": "ada@example.com", "password": WRONG}, REMOTE_ADDR="192.0.2.2")
    attempt(REMOTE_ADDR="192.0.2.3")
    assert attempt(password=PASSWORD, REMOTE_ADDR="192.0.2.4").status_code == 429


# -- same answer, same work, for an unknown email and a wrong password ----------


class CountingHasher(PBKDF2PasswordHasher):
    """PBKDF2 at a low cost that counts how often a password is hashed."""

    algorithm = "counting_pbkdf2"
    iterations = 1000
    calls = 0

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        type(self).calls += 1
        return super().encode(password, salt, iterations)


def test_unknown_email_and_wrong_password_look_and_cost_the_same(settings, user):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher", *settings.PASSWORD_HASHERS]
    user.set_password(PASSWORD)
    user.save()
    assert user.password.startswith("counting_pbkdf2$")

    CountingHasher.calls = 0
    wrong = attempt("ada@example.com", WRONG)
    hashes_for_wrong_password = CountingHasher.calls

    CountingHasher.calls = 0
    unknown = attempt("nobody@example.com", WRONG, REMOTE_ADDR="192.0.2.9")
    hashes_for_unknown_email = CountingHasher.calls

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert hashes_for_wrong_password == hashes_for_unknown_email == 1


# -- passwords ------------------------------------------------------------------


def test_a_pbkdf2_hash_is_upgraded_to_argon2id_on_sign_in(user):
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    assert attempt(password=PASSWORD).status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize("weak", ["short1", "password123", "12345678901234", "ada@example.com"])
def test_signup_api_applies_the_password_validators(api_client, db, weak):
    response = api_client.post(
        "/api/accounts/signup/", {"email": "ada@example.com", "password": weak, "name": "Ada"}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


@pytest.mark.parametrize("weak", ["short1", "password123", "12345678901234"])
def test_password_change_api_applies_the_password_validators(auth_client, user, weak):
    response = auth_client.post(
        "/api/accounts/password/", {"old_password": PASSWORD, "new_password": weak}, format="json"
    )
    assert response.status_code == 400
    assert "new_password" in response.json()["errors"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# -- the counters live in the shared cache ----------------------------------------

SECOND_WORKER = """
import json, sys
import django
from django.conf import settings
settings.CACHES["default"]["KEY_PREFIX"] = sys.argv[2]
django.setup()
from django.test import RequestFactory
import tokens.throttling as t
t.auth_event_record = lambda **kwargs: None  # this process has no tables; only the counter matters here
request = RequestFactory().post("/api/token/", {"username": "x@example.com"}, REMOTE_ADDR=sys.argv[1])
refusal = t.sign_in_attempt_refusal(request)
print(json.dumps(refusal and refusal.wait))
"""


def _redis_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379")
def test_workers_count_together_through_a_redis_cache(settings, user):
    prefix = f"throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": prefix,
        }
    }
    address = "203.0.113.77"
    try:
        for i in range(3):
            assert attempt(f"r{i}@example.com", REMOTE_ADDR=address).status_code == 401
        env = {
            **os.environ,
            "CACHE_URL": "redis://127.0.0.1:6379/0",
            "LOGIN_RATE": "3/min",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_READ_DOT_ENV": "0",
        }
        out = subprocess.run(
            [sys.executable, "-c", SECOND_WORKER, address, prefix],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        wait = json.loads(out.stdout.strip().splitlines()[-1])
        assert wait is not None and wait >= 1
    finally:
        # Only this test's keys: the Redis database may be shared.
        import redis

        connection = redis.Redis(host="127.0.0.1", port=6379, db=0)
        keys = list(connection.scan_iter(match=f"{prefix}:*"))
        if keys:
            connection.delete(*keys)


UNREACHABLE_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_pages_refuse_sign_in_with_503_when_the_cache_is_down(client, settings, staff_user, path):
    settings.CACHES = UNREACHABLE_REDIS
    response = client.post(path, {"username": "staff@example.com", "password": PASSWORD})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "Signing in is unavailable for a moment" in response.content.decode()
    assert "_auth_user_id" not in client.session
