"""tokens.statements and tokens.db: hot-path SQL built once, on every backend."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tokens import clock, db, statements
from tokens.authentication import live_session_user
from tokens.models import AuthEvent, LoginSession, OutstandingToken
from tokens.services import ClientInfo, token_pair_obtain


def test_other_backends_get_a_plain_cursor_and_no_batching():
    class Plain:
        def cursor(self) -> str:
            return "plain cursor"

    plain: Any = Plain()
    assert db.prepared_cursor(plain) == "plain cursor"
    with db.pipeline(plain):
        pass


def test_writes_quote_identifiers_and_leave_values_to_placeholders():
    quote = connection.ops.quote_name
    write = statements.update(
        connection,
        OutstandingToken,
        set_=["blacklisted_at"],
        where=["jti", "login_session"],
        where_null=["blacklisted_at"],
    )
    assert write.sql == (
        f"UPDATE {quote('tokens_outstandingtoken')} SET {quote('blacklisted_at')} = %s "
        f"WHERE {quote('jti')} = %s AND {quote('sid')} = %s AND {quote('blacklisted_at')} IS NULL"
    )
    insert = statements.insert(connection, AuthEvent, ["kind", "user", "data"])
    assert insert.sql == (
        f"INSERT INTO {quote('tokens_authevent')} ({quote('kind')}, {quote('user_id')}, {quote('data')}) "
        "VALUES (%s, %s, %s)"
    )
    with pytest.raises(ValueError, match="3 values expected, got 2"):
        insert.params(connection, ["refresh", None])


@pytest.mark.django_db
def test_a_write_adapts_values_as_the_orm_would(user):
    now = clock.now()
    session = LoginSession.objects.create(user=user, transport="token", created_at=now, last_used_at=now)
    write = statements.insert(
        connection, AuthEvent, ["created_at", "kind", "user", "email", "sid", "ip", "user_agent", "data"]
    )
    values = [now, "refresh", user.pk, "", session.sid, "::1", "", {"a": [1]}]
    with connection.cursor() as cursor:
        cursor.execute(write.sql, write.params(connection, values))
    event = AuthEvent.objects.get(kind="refresh")
    assert (event.created_at, event.user_id, event.sid, event.ip, event.data) == (
        now,
        user.pk,
        session.sid,
        "::1",
        {"a": [1]},
    )


@pytest.mark.django_db
def test_a_select_is_compiled_once_and_its_rows_converted(user):
    select = statements.Select(
        lambda sid: LoginSession.objects.filter(sid=sid).values_list("sid", "user__is_active", "revoked_at"),
        placeholder=uuid.UUID(int=0),
        field=LoginSession._meta.pk,
    )
    now = clock.now()
    session = LoginSession.objects.create(user=user, transport="token", created_at=now, last_used_at=now)
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        select.execute(cursor, "default", session.sid)
        row = select.fetchone(cursor, "default")
        select.execute(cursor, "default", uuid.uuid4())
        missing = select.fetchone(cursor, "default")
    assert row == (session.sid, True, None)  # a UUID and a bool on every backend, not text and 1
    assert missing is None
    assert len(queries) == 2
    assert select.names("default") == ("sid", "is_active", "revoked_at")


def test_a_select_refuses_a_placeholder_it_cannot_place():
    select = statements.Select(
        lambda sid: LoginSession.objects.filter(sid=sid) | LoginSession.objects.filter(sid=sid),
        placeholder=uuid.UUID(int=0),
        field=LoginSession._meta.pk,
    )
    with pytest.raises(RuntimeError, match="appears 2 times"):
        select.execute(None, "default", uuid.uuid4())


@pytest.mark.django_db
def test_the_live_session_user_is_a_complete_user(user):
    pair = token_pair_obtain(user=user, client=ClientInfo())
    found = live_session_user(sid=pair.sid)
    assert found == user
    assert (found.email, found.is_active, found.is_staff, found.date_joined) == (
        user.email,
        True,
        False,
        user.date_joined,
    )
    assert found.check_password  # a real model instance, password hash included
    assert found.password == user.password


@pytest.mark.django_db
def test_a_write_takes_an_unsaved_instances_values_in_its_own_order(user):
    now = clock.now()
    event = AuthEvent(created_at=now, kind="refresh", user_id=user.pk, ip="192.0.2.1")
    ordered = statements.insert(connection, AuthEvent, ["kind", "user", "created_at", "email"])
    assert ordered.params_of(connection, event) == ordered.params(connection, ["refresh", user.pk, now, ""])
    write = statements.insert(
        connection, AuthEvent, ["created_at", "kind", "user", "email", "ip", "user_agent", "data"]
    )
    with connection.cursor() as cursor:
        cursor.execute(write.sql, write.params_of(connection, event))
    saved = AuthEvent.objects.get(kind="refresh")
    assert (saved.created_at, saved.user_id, saved.ip, saved.data) == (now, user.pk, "192.0.2.1", {})
