"""Django's PostgreSQL backend, with three additions for the hot paths.

`ENGINE = "config.db.postgresql"` (settings.py picks it for every PostgreSQL
`DATABASE_URL`). Everything else is Django's own backend, unchanged.

1. **A health check without a round trip.** Django's `CONN_HEALTH_CHECKS`
   sends `SELECT 1` before the first query of every request, which doubles
   the round trips of a request that makes one query. A connection that the
   server closed (restart, `pg_terminate_backend`, a pooler going away) has
   something waiting on its socket: the server's FATAL message, or the end
   of the stream. So when the connection is idle, not marked broken, was
   checked less than `HEALTH_CHECK_IDLE_SECONDS` ago and nothing is waiting
   on its socket, it is healthy; in every other case Django's `SELECT 1`
   decides, as before. The idle limit covers what a socket cannot show: a
   firewall or NAT that drops a quiet connection without a word. What it
   cannot see within those 30 s is a peer gone without a word (a host that
   died, an address moved by a failover): the request that meets it fails
   with 503, and Django replaces the connection after it.
2. **Prepared statements for the hot paths.** `prepared_cursor()` is a
   cursor with server-side binding whose statements psycopg prepares once
   per connection and then only executes, sparing PostgreSQL the parse and
   plan of the same statement on every request. Only code that asks for it
   gets it (the bearer-token session lookup and refresh rotation); the rest
   of the ORM keeps Django's client-side binding. `OPTIONS
   ["prepare_hot_statements"] = False` (env `DATABASE_PREPARED_STATEMENTS`)
   turns it off, for a transaction-mode pooler that cannot carry prepared
   statements (PgBouncer before 1.22, or without `max_prepared_statements`);
   with `CONN_MAX_AGE=0` (a connection per request) nothing is prepared
   either, since the PREPARE would cost a round trip on every request. A
   migration that changes a selected column's type makes the statement
   stale on the connections that hold it: outside a transaction it is
   prepared again at once, inside one the request gets a 503 and the next
   one works.
3. **Pipelining.** `pipeline()` sends the statements executed inside it
   without waiting for each answer (psycopg's pipeline mode); a fetch, or
   the end of the block, waits for all of them at once. Errors are Django's
   database exceptions, as from a cursor.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import DatabaseError
from django.db.backends.postgresql import base

# Django's cursor with server-side binding (what OPTIONS["server_side_binding"] selects).
ServerBindingCursor: Any = getattr(base, "ServerBindingCursor")  # noqa: B009 - not in django-stubs

# A connection idle for longer than this is checked with a round trip.
HEALTH_CHECK_IDLE_SECONDS = 30.0
# psycopg's automatic-preparation threshold when only the hot statements are prepared.
NEVER_AUTOMATICALLY = 2**62


STALE_PLAN = "cached plan must not change result type"


def stale_prepared_statement(error: BaseException) -> bool:
    """A prepared statement the server no longer has, or whose result changed shape under it.

    The first follows a pooler or a `DISCARD ALL` dropping the server's
    statements; the second a migration that changed the type of a selected
    column while this connection kept the statement prepared.
    """
    return isinstance(error, psycopg.errors.InvalidSqlStatementName) or (
        isinstance(error, psycopg.errors.FeatureNotSupported) and STALE_PLAN in str(error)
    )


class StalePreparedStatement(psycopg.OperationalError):
    """Raised in place of a stale prepared statement's error inside a transaction: retry it."""


class PreparedCursor(ServerBindingCursor):
    """Server-side binding; each statement is prepared on its first execution on a connection.

    A stale statement (see `stale_prepared_statement`) outside a transaction
    is forgotten, by psycopg and the server alike, and run once more; inside
    one it becomes an OperationalError, which the API answers with 503 and
    Retry-After, and the rollback makes psycopg forget its statements.
    """

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        prepare = True if prepare is None else prepare
        try:
            return super().execute(query, params, prepare=prepare, binary=binary)
        except psycopg.Error as e:
            if not stale_prepared_statement(e):
                raise
            if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise StalePreparedStatement(f"prepared statement out of date ({e.sqlstate}): {e}") from e
        # psycopg clears its own cache when it sees DEALLOCATE ALL go through.
        super().execute("DEALLOCATE ALL", prepare=False)
        return super().execute(query, params, prepare=prepare, binary=binary)


# django-stubs leaves out parts of the wrapper used here (health_check_enabled,
# pool, _prepare_cursor); they are Django 5.2's own.
_DjangoDatabaseWrapper: Any = base.DatabaseWrapper


class DatabaseWrapper(_DjangoDatabaseWrapper):
    health_check_done: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.settings_dict.setdefault("OPTIONS", {})
        self.prepare_hot_statements = bool(options.get("prepare_hot_statements", True))
        self._quiet_since: float | None = None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params.pop("prepare_hot_statements", None)
        if self.prepare_hot_statements and params.get("prepare_threshold") is None:
            # psycopg prepares nothing while the threshold is None (Django's
            # default). A threshold never reached keeps every other statement
            # unprepared, as Django has it, and lets `prepare=True` through.
            params["prepare_threshold"] = NEVER_AUTOMATICALLY
        return params

    def connect(self) -> None:
        super().connect()
        self._quiet_since = time.monotonic()

    # -- 1. health check -----------------------------------------------------------

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and self._socket_quiet()
        ):
            self.health_check_done = True
            self._quiet_since = time.monotonic()
            return
        # Django's own check: a `SELECT 1`, closing the connection if it fails.
        had_connection = self.connection is not None
        super().close_if_health_check_failed()
        if had_connection and self.connection is not None:
            self._quiet_since = time.monotonic()

    def _socket_quiet(self) -> bool:
        """True when the connection is idle and its socket shows nothing the server sent."""
        conn = self.connection
        if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        if self._quiet_since is None or time.monotonic() - self._quiet_since > HEALTH_CHECK_IDLE_SECONDS:
            return False
        try:
            poller = select.poll()  # not select.select(): no limit on the descriptor's number
            poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            events = poller.poll(0)
        except (OSError, ValueError, psycopg.Error):
            return False
        # An idle connection is sent nothing unless the server is ending it
        # (or a LISTEN notification arrived): let the round trip decide.
        return not events

    # -- 2. prepared statements --------------------------------------------------

    def prepared_cursor(self) -> Any:
        """A Django cursor whose statements are prepared on first use (plain cursor when turned off)."""
        if not self.prepare_hot_statements or self.settings_dict.get("CONN_MAX_AGE") == 0:
            # A connection per request would pay a PREPARE round trip every time.
            return self.cursor()
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(PreparedCursor(self.connection))

    # -- 3. pipelining -----------------------------------------------------------

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Batch the statements executed inside into as few round trips as their fetches allow."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            try:
                with self.connection.pipeline():
                    yield
            except (psycopg.Error, DatabaseError) as e:
                # Pipelined statements fail when the batch is synced (a fetch,
                # or the end of the block), not in execute(); a fetch through
                # Django's cursor has already translated the error.
                original = e if isinstance(e, psycopg.Error) else e.__cause__
                if original is not None and stale_prepared_statement(original):
                    raise StalePreparedStatement(f"prepared statement out of date: {original}") from e
                raise
