"""Clean-up commands (flushexpiredtokens, flush_login_sessions) and the scale-data loader."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import User
from tokens.cleanup import login_sessions_flush, outstanding_tokens_flush_expired
from tokens.models import AuthEvent, LoginSession, OutstandingToken

pytestmark = pytest.mark.django_db


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def session_make(user: Any, *, at: Any, revoked_at: Any = None, tokens: int = 1, session_key: str = "") -> LoginSession:
    session = LoginSession.objects.create(
        user=user,
        transport=LoginSession.Transport.TOKEN,
        created_at=at,
        last_used_at=at,
        session_key=session_key,
        revoked_at=revoked_at,
        revoke_reason=LoginSession.RevokeReason.LOGOUT if revoked_at else "",
    )
    for _ in range(tokens):
        OutstandingToken.objects.create(
            jti=uuid.uuid4(), login_session=session, user=user, created_at=at, expires_at=at + timedelta(days=7)
        )
    return session


# -- flushexpiredtokens -----------------------------------------------------------------


def test_flushexpiredtokens_deletes_only_expired_rows_in_batches(user, clock):
    old = session_make(user, at=clock.now - timedelta(days=10), tokens=5)
    fresh = session_make(user, at=clock.now - timedelta(days=1), tokens=2)

    out = run("flushexpiredtokens", "--batch-size", "2", "-v", "2")

    assert "Deleted 5 expired token rows in 3 batches." in out
    assert out.count("deleted") >= 3
    assert not OutstandingToken.objects.filter(login_session=old).exists()
    assert OutstandingToken.objects.filter(login_session=fresh).count() == 2
    # The session rows stay; flush_login_sessions decides about those.
    assert LoginSession.objects.filter(sid=old.sid).exists()


def test_flushexpiredtokens_dry_run_counts_and_deletes_nothing(user, clock):
    session_make(user, at=clock.now - timedelta(days=10), tokens=3)
    out = run("flushexpiredtokens", "--dry-run", "--json")
    assert json.loads(out) == {"expired_tokens": 3, "batches": 0, "dry_run": True}
    assert OutstandingToken.objects.count() == 3


def test_flushexpiredtokens_with_nothing_expired(user, clock):
    session_make(user, at=clock.now, tokens=2)
    assert json.loads(run("flushexpiredtokens", "--json")) == {"expired_tokens": 0, "batches": 0, "dry_run": False}
    assert run("flushexpiredtokens", "-v", "0") == ""


def test_flushexpiredtokens_rejects_a_bad_batch_size():
    with pytest.raises(CommandError, match="batch-size"):
        run("flushexpiredtokens", "--batch-size", "0")


def test_flush_batches_cost_a_flat_number_of_queries(user, clock, django_assert_max_num_queries):
    session_make(user, at=clock.now - timedelta(days=10), tokens=30)
    # Per batch: select the oldest keys, delete them, and savepoint bookkeeping;
    # a fourth, empty batch finds nothing left.
    with django_assert_max_num_queries(4 * 4):
        result = outstanding_tokens_flush_expired(batch_size=10)
    assert (result.deleted, result.batches) == (30, 3)


def test_a_flushed_refresh_token_stays_refused(api_client, tokens, clock):
    clock.advance(days=8)
    run("flushexpiredtokens")
    assert not OutstandingToken.objects.exists()
    clock.advance(days=-8)  # even if the clock went back, the token has no row
    response = api_client.post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401


# -- flush_login_sessions -----------------------------------------------------------------


def test_flush_login_sessions_deletes_sessions_finished_before_the_retention_period(user, clock, settings):
    now = clock.now
    refresh_days = settings.JWT_REFRESH_TOKEN_LIFETIME_DAYS
    revoked_long_ago = session_make(user, at=now - timedelta(days=40), revoked_at=now - timedelta(days=31), tokens=2)
    revoked_lately = session_make(user, at=now - timedelta(days=40), revoked_at=now - timedelta(days=29))
    expired_long_ago = session_make(user, at=now - timedelta(days=30 + refresh_days + 1))
    expired_lately = session_make(user, at=now - timedelta(days=30 + refresh_days - 1))
    live = session_make(user, at=now)
    event = AuthEvent.objects.create(created_at=now, kind=AuthEvent.Kind.LOGOUT, sid=revoked_long_ago.sid)

    out = run("flush_login_sessions", "--days", "30")

    assert "Deleted 2 finished login sessions" in out
    remaining = set(LoginSession.objects.values_list("sid", flat=True))
    assert remaining == {revoked_lately.sid, expired_lately.sid, live.sid}
    assert not OutstandingToken.objects.filter(login_session_id=revoked_long_ago.sid).exists()
    assert not OutstandingToken.objects.filter(login_session_id=expired_long_ago.sid).exists()
    # The audit trail keeps its record.
    assert AuthEvent.objects.filter(pk=event.pk).exists()


def test_flush_login_sessions_keeps_an_idle_session_whose_browser_session_lives(user, clock, settings):
    browser = Client()
    browser.force_login(user)
    carried = LoginSession.objects.get(user=user)
    idle = timedelta(days=settings.JWT_REFRESH_TOKEN_LIFETIME_DAYS + 2)
    LoginSession.objects.filter(sid=carried.sid).update(last_used_at=clock.now - idle)

    assert login_sessions_flush(days=0).deleted == 0
    assert LoginSession.objects.filter(sid=carried.sid).exists()
    # Once the Django session has expired as well, the login session is finished.
    clock.advance(seconds=settings.SESSION_COOKIE_AGE + 1)
    assert login_sessions_flush(days=0).deleted == 1


def test_flush_login_sessions_dry_run_and_json(user, clock):
    session_make(user, at=clock.now - timedelta(days=50), revoked_at=clock.now - timedelta(days=45))
    assert json.loads(run("flush_login_sessions", "--dry-run", "--json")) == {
        "login_sessions": 1,
        "batches": 0,
        "dry_run": True,
    }
    assert LoginSession.objects.count() == 1
    assert "1 finished login sessions would be deleted (dry run)." in run("flush_login_sessions", "--dry-run")


def test_flush_login_sessions_in_batches(user, clock):
    for _ in range(5):
        session_make(user, at=clock.now - timedelta(days=50), revoked_at=clock.now - timedelta(days=45), tokens=2)
    result = login_sessions_flush(days=30, batch_size=2)
    assert (result.deleted, result.batches) == (5, 3)
    assert not LoginSession.objects.exists()
    assert not OutstandingToken.objects.exists()


@pytest.mark.parametrize("args", [["--days", "-1"], ["--batch-size", "0"]])
def test_flush_login_sessions_rejects_bad_input(args):
    with pytest.raises(CommandError):
        run("flush_login_sessions", *args)


# -- load_scale_data ---------------------------------------------------------------------


def test_load_scale_data_makes_the_requested_shape(clock):
    summary = json.loads(
        run("load_scale_data", "--users", "3", "--sessions", "10", "--tokens", "35", "--seed", "1", "--json")
    )

    assert (summary["users"], summary["sessions"], summary["tokens"], summary["events"]) == (3, 10, 35, 10)
    loaded = User.objects.filter(email__endswith=f".{summary['tag']}@scale.example.com")
    assert loaded.count() == 3
    assert not any(u.has_usable_password() for u in loaded)
    assert User.objects.filter(email=summary["sample_email"]).exists()
    assert LoginSession.objects.count() == 10
    assert OutstandingToken.objects.count() == 35
    # One unblacklisted token per live session at most; revoked sessions have none.
    for session in LoginSession.objects.all():
        open_tokens = OutstandingToken.objects.filter(login_session=session, blacklisted_at__isnull=True).count()
        assert open_tokens == (0 if session.revoked_at else 1)
    assert AuthEvent.objects.filter(kind=AuthEvent.Kind.SIGN_IN).count() == 10


def test_load_scale_data_runs_add_up(clock):
    run("load_scale_data", "--users", "2", "--sessions", "2", "--tokens", "2", "--events", "0")
    run("load_scale_data", "--users", "2", "--sessions", "2", "--tokens", "2", "--events", "0")
    assert LoginSession.objects.count() == 4
    assert User.objects.count() == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--users", "0", "--sessions", "1"],
        ["--sessions", "0", "--tokens", "1"],
        ["--users", "-1"],
        ["--batch-size", "0"],
    ],
)
def test_load_scale_data_rejects_impossible_shapes(args):
    with pytest.raises(CommandError):
        run("load_scale_data", *args)
