"""The PostgreSQL backend (config/db/postgresql): health check, prepared hot statements, pipelining.

Each test plays a request's life cycle the way Django does: `request_started`
runs `close_if_unusable_or_obsolete()`, which asks for a fresh health check,
and the first cursor of the request runs it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoPostgreSQL

from config.db.postgresql import base as backend
from tokens import db
from tokens.authentication import live_session_user
from tokens.models import AuthEvent
from tokens.services import ClientInfo, token_pair_obtain

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)"),
]


@pytest.fixture
def select_ones(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count Django's round-trip health checks (`SELECT 1` in `is_usable`)."""
    calls: list[int] = []
    original = DjangoPostgreSQL.is_usable

    def counting(self: Any) -> bool:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(DjangoPostgreSQL, "is_usable", counting)
    return calls


def _next_request() -> None:
    connection.close_if_unusable_or_obsolete()  # what request_started does


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.fixture
def fresh_connection() -> Iterator[None]:
    connection.close()
    connection.ensure_connection()
    yield
    connection.close()


def test_settings_pick_the_project_backend_for_postgresql():
    assert connection.settings_dict["ENGINE"] == "config.db.postgresql"
    assert isinstance(connections["default"], backend.DatabaseWrapper)
    assert connections["default"].health_check_enabled


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_busy_healthy_connection_is_checked_without_a_round_trip(select_ones):
    pid = _backend_pid()
    for _ in range(5):
        _next_request()
        assert _backend_pid() == pid
    assert select_ones == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_connection_idle_for_long_is_checked_with_a_round_trip(select_ones, monkeypatch):
    pid = _backend_pid()
    _next_request()
    monkeypatch.setattr(time, "monotonic", lambda: 10**9)  # long after the last check
    assert _backend_pid() == pid
    assert select_ones == [1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_terminated_connection_is_replaced_before_the_request_uses_it(select_ones):
    pid = _backend_pid()
    other = psycopg.connect(**_connect_kwargs(), autocommit=True)
    try:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    finally:
        other.close()
    _wait_readable(connection.connection)

    _next_request()
    # No error reaches the request: the check saw the server's goodbye on
    # the socket, confirmed with `SELECT 1` (which failed) and reconnected.
    assert _backend_pid() != pid
    assert select_ones == [1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_inside_a_transaction_the_check_is_djangos(select_ones):
    _backend_pid()
    _next_request()
    connection.connection.execute("BEGIN")  # not idle: the socket alone cannot vouch for it
    try:
        connection.close_if_health_check_failed()
    finally:
        connection.connection.execute("ROLLBACK")
    assert select_ones == [1]


def _connect_kwargs() -> dict[str, Any]:
    params = connection.get_connection_params()
    return {k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}


def _wait_readable(conn: Any, timeout: float = 5.0) -> None:
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([conn.fileno()], [], [], 0.05)[0]:
            return
    raise AssertionError("the terminated connection never became readable")


# -- prepared statements ---------------------------------------------------------------


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_the_session_lookup_is_prepared_and_ordinary_queries_are_not(user):
    pair = token_pair_obtain(user=user, client=ClientInfo())
    assert live_session_user(sid=pair.sid) == user
    assert live_session_user(sid=str(uuid.uuid4())) is None
    AuthEvent.objects.filter(kind="nothing").count()  # an ordinary ORM query, many times
    AuthEvent.objects.filter(kind="nothing").count()

    prepared = _prepared_statements()
    assert len(prepared) == 1, prepared
    assert "tokens_loginsession" in prepared[0] and "$1" in prepared[0]


@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off(user):
    settings_dict = {**connection.settings_dict, "OPTIONS": {**connection.settings_dict["OPTIONS"]}}
    settings_dict["OPTIONS"]["prepare_hot_statements"] = False
    wrapper = backend.DatabaseWrapper(settings_dict, alias="default")
    try:
        assert wrapper.get_connection_params()["prepare_threshold"] is None  # Django's default: nothing prepared
        pair = token_pair_obtain(user=user, client=ClientInfo())
        with wrapper.prepared_cursor() as cursor:
            cursor.execute("SELECT user_id FROM tokens_loginsession WHERE sid = %s", [uuid.UUID(pair.sid)])
            assert cursor.fetchone() == (user.pk,)
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)
    finally:
        wrapper.close()


def test_the_option_never_reaches_psycopg():
    params = connection.get_connection_params()
    assert "prepare_hot_statements" not in params  # psycopg.connect would refuse it
    assert params["prepare_threshold"] == backend.NEVER_AUTOMATICALLY


# -- pipelining --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_statements_in_a_pipeline_run_in_order_and_report_rowcounts_after_the_sync(user):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE pipeline_probe (id int PRIMARY KEY, v int NOT NULL)")
    cursors = []
    with db.pipeline(connection):
        for sql, params in [
            ("INSERT INTO pipeline_probe VALUES (%s, %s)", [1, 10]),
            ("UPDATE pipeline_probe SET v = v + 1 WHERE id = %s", [1]),
            ("UPDATE pipeline_probe SET v = v + 1 WHERE id = %s", [2]),
        ]:
            cursor = db.prepared_cursor(connection)
            cursor.execute(sql, params)
            cursors.append(cursor)
        reader = db.prepared_cursor(connection)
        reader.execute("SELECT v FROM pipeline_probe WHERE id = %s", [1])
        assert reader.fetchone() == (11,)
    assert [c.rowcount for c in cursors] == [1, 1, 0]


@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_pipeline_is_djangos_exception_and_the_connection_recovers():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE pipeline_probe (id int PRIMARY KEY)")

    def insert_twice() -> None:
        with db.pipeline(connection):
            for _ in range(2):
                with db.prepared_cursor(connection) as cursor:
                    cursor.execute("INSERT INTO pipeline_probe VALUES (%s)", [1])

    with pytest.raises(IntegrityError):
        insert_twice()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pipeline_probe")
        # Outside a transaction a pipeline's statements up to the sync are one
        # implicit transaction: the failed batch leaves nothing behind.
        assert cursor.fetchone() == (0,)


# -- stale prepared statements ----------------------------------------------------------


@pytest.fixture
def probe_table() -> Iterator[str]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id int PRIMARY KEY, v int NOT NULL)")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, 7)")
    yield "prepared_probe"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS prepared_probe")


def _alter_elsewhere(sql: str) -> None:
    """A migration run by another process, while this connection keeps its statements prepared."""
    other = psycopg.connect(**_connect_kwargs(), autocommit=True)
    try:
        other.execute(sql)
    finally:
        other.close()


def _read_probe() -> Any:
    with db.prepared_cursor(connection) as cursor:
        cursor.execute("SELECT v FROM prepared_probe WHERE id = %s", [1])
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_column_type_change_outside_a_transaction_is_absorbed(probe_table):
    assert _read_probe() == (7,)
    _alter_elsewhere("ALTER TABLE prepared_probe ALTER COLUMN v TYPE bigint")
    # "cached plan must not change result type": forgotten and prepared again.
    assert _read_probe() == (7,)
    assert _read_probe() == (7,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_column_type_change_inside_a_transaction_is_a_retryable_operational_error(probe_table):
    assert _read_probe() == (7,)
    _alter_elsewhere("ALTER TABLE prepared_probe ALTER COLUMN v TYPE text")
    with pytest.raises(OperationalError, match="prepared statement out of date"), transaction.atomic():
        _read_probe()
    assert _read_probe() == ("7",)  # the rollback made psycopg forget: the next request works


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_statement_the_server_lost_is_prepared_again(probe_table):
    assert _read_probe() == (7,)
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")  # behind psycopg's back, as a pooler would
    assert _read_probe() == (7,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_connection")
def test_a_stale_statement_in_a_pipeline_is_a_retryable_operational_error(probe_table):
    assert _read_probe() == (7,)
    _alter_elsewhere("ALTER TABLE prepared_probe ALTER COLUMN v TYPE bigint")

    def pipelined_read() -> None:
        with transaction.atomic(), db.pipeline(connection):
            _read_probe()

    with pytest.raises(OperationalError, match="prepared statement out of date"):
        pipelined_read()
    assert _read_probe() == (7,)


@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_on_a_connection_per_request(user):
    settings_dict = {**connection.settings_dict, "CONN_MAX_AGE": 0}
    wrapper = backend.DatabaseWrapper(settings_dict, alias="default")
    try:
        with wrapper.prepared_cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tokens_loginsession WHERE user_id = %s", [user.pk])
            assert cursor.fetchone() == (0,)
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)
    finally:
        wrapper.close()
