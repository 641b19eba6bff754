"""Concurrent refreshes of one token: exactly one wins, the rest are reuse, nothing 5xx.

Threads each hold their own database connection, against a transactional
test database, so the row lock in refresh_token_rotate is what serialises
them. PostgreSQL only: that is where the locking is real and matters.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections
from django.test import Client

from conftest import PASSWORD
from tokens.models import LoginSession, OutstandingToken
from tokens.tokens import RefreshToken

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locking is tested on PostgreSQL"),
]

CLIENTS = 20


def run_at_once(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def sign_in() -> dict:
    response = Client().post(
        "/api/token/", {"email": "ada@example.com", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200
    return response.json()


def refresh_status(token: str) -> tuple[int, str | None]:
    response = Client().post("/api/token/refresh/", {"refresh": token}, content_type="application/json")
    body = response.json()
    return response.status_code, body.get("code") if response.status_code != 200 else body["refresh"]


@pytest.mark.parametrize("trial", range(3))
def test_twenty_concurrent_refreshes_of_one_token_give_exactly_one_success(user, trial):
    pair = sign_in()

    results = run_at_once(CLIENTS, lambda i: refresh_status(pair["refresh"]))

    statuses = Counter(status for status, _ in results)
    assert statuses[200] == 1, statuses
    assert statuses[401] == CLIENTS - 1, statuses
    assert {code for status, code in results if status == 401} == {"token_reused"}
    # The losers proved someone else holds the token: the family is revoked.
    sid = uuid.UUID(RefreshToken(pair["refresh"]).sid)
    assert LoginSession.objects.get(sid=sid).revoke_reason == LoginSession.RevokeReason.TOKEN_REUSED
    assert OutstandingToken.objects.filter(login_session_id=sid).count() == 2
    assert not OutstandingToken.objects.filter(login_session_id=sid, blacklisted_at__isnull=True).exists()


def test_concurrent_refreshes_inside_the_grace_window_all_succeed_without_revoking(user, settings):
    settings.JWT_REFRESH_REUSE_GRACE_SECONDS = 30
    pair = sign_in()

    results = run_at_once(8, lambda i: refresh_status(pair["refresh"]))

    assert [status for status, _ in results] == [200] * 8
    sid = uuid.UUID(RefreshToken(pair["refresh"]).sid)
    assert LoginSession.objects.get(sid=sid).revoked_at is None


def test_concurrent_refreshes_of_different_sessions_all_succeed(user):
    pairs = [sign_in() for _ in range(10)]

    results = run_at_once(10, lambda i: refresh_status(pairs[i]["refresh"]))

    assert [status for status, _ in results] == [200] * 10
    assert LoginSession.objects.filter(revoked_at__isnull=True).count() == 10


@pytest.mark.parametrize("trial", range(4))
def test_concurrent_refresh_and_logout_leave_the_session_revoked(user, trial):
    # Refresh and logout once took their row locks in opposite orders and
    # deadlocked (a 503) about one run in three.
    pair = sign_in()

    def work(i: int):
        if i == 0:
            return (
                Client()
                .post("/api/token/logout/", {"refresh": pair["refresh"]}, content_type="application/json")
                .status_code
            )
        return refresh_status(pair["refresh"])[0]

    results = run_at_once(6, work)

    assert all(status in (200, 204, 401) for status in results)
    sid = uuid.UUID(RefreshToken(pair["refresh"]).sid)
    assert LoginSession.objects.get(sid=sid).revoked_at is not None
    assert not OutstandingToken.objects.filter(login_session_id=sid, blacklisted_at__isnull=True).exists()
