"""Clean-up services: expired refresh-token rows and finished login sessions, deleted in batches.

Each batch is one short statement in its own transaction, so a million rows
never hold a lock for long and the API keeps rotating tokens meanwhile.
Deleting these rows never brings a token back to life: a refresh token whose
`jti` has no row is refused, and an expired one is refused anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from . import clock, conf
from .models import LoginSession, OutstandingToken

DEFAULT_BATCH_SIZE = 10_000
# A session takes its refresh family (often tens of rows) with it: smaller batches.
DEFAULT_SESSION_BATCH_SIZE = 1_000
DEFAULT_RETENTION_DAYS = 30

# Session engines that keep sessions in the django_session table.
_DB_SESSION_ENGINES = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FlushResult:
    deleted: int
    batches: int
    dry_run: bool


def _batch_size_check(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    return batch_size


def outstanding_tokens_expired(*, now: datetime | None = None) -> QuerySet[OutstandingToken]:
    """Return the refresh-token rows whose token has expired."""
    return OutstandingToken.objects.filter(expires_at__lte=now or clock.now())


def outstanding_tokens_flush_expired(
    *, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False, progress: Progress | None = None
) -> FlushResult:
    """Delete expired refresh-token rows, `batch_size` at a time; with `dry_run`, only count them."""
    _batch_size_check(batch_size)
    now = clock.now()
    if dry_run:
        return FlushResult(deleted=outstanding_tokens_expired(now=now).count(), batches=0, dry_run=True)
    deleted = batches = 0
    while True:
        with transaction.atomic(using=router.db_for_write(OutstandingToken)):
            count = _expired_batch_delete(now=now, batch_size=batch_size)
        if not count:
            break
        deleted += count
        batches += 1
        if progress is not None:
            progress(deleted)
        if count < batch_size:
            break
    return FlushResult(deleted=deleted, batches=batches, dry_run=False)


def _expired_batch_delete(*, now: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` expired rows, oldest first along the expires_at index, in one statement."""
    connection = connections[router.db_for_write(OutstandingToken)]
    if connection.vendor != "postgresql":
        # Elsewhere (SQLite) IN (subquery) runs as key lookups.
        oldest = outstanding_tokens_expired(now=now).order_by("expires_at").values("pk")[:batch_size]
        count, _ = OutstandingToken.objects.filter(pk__in=oldest).delete()
        return count
    # PostgreSQL would hash-join an IN (subquery) against a scan of the whole
    # table on every batch; = ANY(ARRAY(subquery)) makes it one index range
    # scan and one primary-key lookup per row. The rows have no delete
    # signals or dependants, so raw SQL skips nothing Django would have done.
    meta = OutstandingToken._meta
    quote = connection.ops.quote_name
    table, pk, expires = quote(meta.db_table), quote(meta.pk.column), quote(meta.get_field("expires_at").column)
    sql = (
        f"DELETE FROM {table} WHERE {pk} = ANY(ARRAY("  # noqa: S608 -- identifiers from the model, values bound
        f"SELECT {pk} FROM {table} WHERE {expires} <= %s ORDER BY {expires} LIMIT %s))"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, batch_size])
        return cursor.rowcount


def _sessions_finished_parts(*, days: int, now: datetime) -> list[tuple[QuerySet[LoginSession], str]]:
    """Return (revoked, expired) finished sessions, each with the indexed column to walk it by."""
    if days < 0:
        raise ValueError("The retention period cannot be negative.")
    cutoff = now - timedelta(days=days)
    idle = Q(revoked_at__isnull=True, last_used_at__lt=cutoff - conf.refresh_lifetime())
    if settings.SESSION_ENGINE in _DB_SESSION_ENGINES:
        carried = Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gt=now)
        idle &= Q(session_key="") | ~Q(Exists(carried))
    return [
        (LoginSession.objects.filter(revoked_at__lt=cutoff), "revoked_at"),
        (LoginSession.objects.filter(idle), "last_used_at"),
    ]


def login_sessions_finished(*, days: int, now: datetime | None = None) -> QuerySet[LoginSession]:
    """Return login sessions revoked, or expired, more than `days` days ago.

    A live session has expired when nothing can carry it any more: its last
    refresh token expired (tokens are only issued when `last_used_at` moves)
    and its Django session, if any, is gone or expired.
    """
    (revoked, _), (expired, _) = _sessions_finished_parts(days=days, now=now or clock.now())
    return revoked | expired


def _sessions_still_carried(session_keys: list[str]) -> set[str]:
    """Return the keys of Django sessions that still exist (for engines outside the database)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return {key for key in session_keys if key and store().exists(key)}


def login_sessions_flush(
    *,
    days: int = DEFAULT_RETENTION_DAYS,
    batch_size: int = DEFAULT_SESSION_BATCH_SIZE,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> FlushResult:
    """Delete login sessions revoked or expired more than `days` ago, with their refresh-token rows."""
    _batch_size_check(batch_size)
    # Revoked and expired sessions are walked apart, each along its own index,
    # so that no batch scans the whole table for an OR.
    parts = _sessions_finished_parts(days=days, now=clock.now())
    if dry_run:
        return FlushResult(deleted=sum(part.count() for part, _ in parts), batches=0, dry_run=True)
    check_store = settings.SESSION_ENGINE not in _DB_SESSION_ENGINES
    skipped: set[object] = set()
    deleted = batches = 0
    for finished, column in parts:
        while True:
            with transaction.atomic():
                rows = list(
                    finished.exclude(pk__in=skipped)
                    .order_by(column)
                    .values_list("sid", "session_key", "revoked_at")[:batch_size]
                )
                if not rows:
                    break
                sids = [sid for sid, _, _ in rows]
                if check_store:
                    carried = _sessions_still_carried([key for _, key, revoked in rows if revoked is None])
                    keep = {sid for sid, key, revoked in rows if revoked is None and key in carried}
                    skipped |= keep
                    sids = [sid for sid in sids if sid not in keep]
                # Deleting the sessions deletes their refresh-token rows first
                # (on_delete=CASCADE, done by Django in the same transaction).
                LoginSession.objects.filter(pk__in=sids).delete()
            deleted += len(sids)
            batches += 1
            if progress is not None:
                progress(deleted)
            if len(rows) < batch_size:
                break
    return FlushResult(deleted=deleted, batches=batches, dry_run=False)
