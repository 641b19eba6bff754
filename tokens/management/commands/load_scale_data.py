"""Bulk-load a realistic data set (users, login sessions, refresh-token families, audit events).

The admin and the clean-up commands must stay fast at a million outstanding
tokens; this makes that many in a few minutes so that anyone can measure it.
On PostgreSQL the rows go in through COPY, elsewhere through batched
bulk_create. Every run tags its users' addresses with a fresh random tag, so
loads add up instead of colliding. The users get unusable passwords: nobody
can sign in as them.

Shape of the data: sessions belong to random users; each session holds a
family of refresh tokens spread between its creation and last use, every one
but the newest rotated (blacklisted); a fifth of the sessions are revoked,
which blacklists their newest token too; sessions reach 30 days back and
refresh tokens live JWT_REFRESH_TOKEN_LIFETIME_DAYS, so many rows are expired.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from tokens import clock, conf
from tokens.models import AuthEvent, LoginSession, OutstandingToken

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Dart/3.5 (dart:io)",
    "okhttp/4.12.0",
)
REVOKE_REASONS = tuple(LoginSession.RevokeReason.values)
TRANSPORTS = tuple(LoginSession.Transport.values)
HISTORY = timedelta(days=30)
REVOKED_SHARE = 0.2


@dataclass(frozen=True)
class SessionRow:
    sid: uuid.UUID
    user_id: int
    created_at: datetime
    last_used_at: datetime
    ip: str
    user_agent: str
    transport: str
    revoked_at: datetime | None
    revoke_reason: str


class Command(BaseCommand):
    help = "Bulk-load users, login sessions, outstanding tokens and audit events for scale measurements."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=10_000, help="Users to create (default 10000).")
        parser.add_argument("--sessions", type=int, default=100_000, help="Login sessions to create (default 100000).")
        parser.add_argument(
            "--tokens", type=int, default=1_000_000, help="Outstanding tokens to create (default 1000000)."
        )
        parser.add_argument(
            "--events", type=int, default=None, help="Audit events to create (default: one per session)."
        )
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a repeatable shape.")
        parser.add_argument("--batch-size", type=int, default=5_000, help="Rows per bulk_create batch (not COPY).")
        parser.add_argument("--json", action="store_true", help="Print a JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        n_users, n_sessions, n_tokens = options["users"], options["sessions"], options["tokens"]
        n_events = n_sessions if options["events"] is None else options["events"]
        if min(n_users, n_sessions, n_tokens, n_events) < 0 or options["batch_size"] < 1:
            raise CommandError("Counts cannot be negative and --batch-size must be at least 1.")
        if n_sessions and not n_users:
            raise CommandError("Login sessions need at least one user (--users).")
        if n_tokens and not n_sessions:
            raise CommandError("Outstanding tokens need at least one login session (--sessions).")
        self.rng = random.Random(options["seed"])
        self.batch_size = options["batch_size"]
        self.copy = connection.vendor == "postgresql"
        self.now = clock.now()
        tag = secrets.token_hex(3)
        started = time.monotonic()

        user_ids = self._users_load(n_users, tag)
        self._progress(options, f"{len(user_ids)} users")
        sessions = self._sessions_make(n_sessions, user_ids)
        self._rows_load(LoginSession, self._session_columns(), (self._session_values(s) for s in sessions))
        self._progress(options, f"{len(sessions)} login sessions")
        self._rows_load(OutstandingToken, self._token_columns(), self._tokens_make(n_tokens, sessions))
        self._progress(options, f"{n_tokens} outstanding tokens")
        self._rows_load(AuthEvent, self._event_columns(), self._events_make(n_events, sessions))
        self._progress(options, f"{n_events} audit events")
        if self.copy:
            with connection.cursor() as cursor:
                for model in (get_user_model(), LoginSession, OutstandingToken, AuthEvent):
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")

        summary = {
            "database": connection.vendor,
            "method": "copy" if self.copy else "bulk_create",
            "tag": tag,
            "users": len(user_ids),
            "sessions": len(sessions),
            "tokens": n_tokens,
            "events": n_events,
            "sample_email": self._email(0, tag) if user_ids else None,
            "seconds": round(time.monotonic() - started, 1),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded {summary['users']} users, {summary['sessions']} login sessions, {n_tokens} tokens and "
                    f"{n_events} events in {summary['seconds']} s ({summary['method']}). "
                    f"Sample email: {summary['sample_email']}"
                )
            )

    def _progress(self, options: dict[str, Any], message: str) -> None:
        if options["verbosity"] >= 2 and not options["json"]:
            self.stdout.write(f"  loaded {message}")

    # -- rows ----------------------------------------------------------------

    @staticmethod
    def _email(index: int, tag: str) -> str:
        return f"user{index}.{tag}@scale.example.com"

    def _users_load(self, count: int, tag: str) -> list[int]:
        User = get_user_model()
        joined = self.now - HISTORY * 2
        users = (
            User(
                email=self._email(i, tag),
                name=f"Scale User {i}",
                # "!" marks an unusable password: nobody can sign in as these users.
                password=f"!scale-{tag}",
                date_joined=joined,
            )
            for i in range(count)
        )
        ids: list[int] = []
        with transaction.atomic():
            for batch in _batches(users, self.batch_size):
                ids.extend(u.pk for u in User.objects.bulk_create(batch))
        if ids and ids[0] is None:
            # A backend that does not return ids from bulk inserts.
            ids = list(User.objects.filter(email__endswith=f".{tag}@scale.example.com").values_list("pk", flat=True))
        return ids

    def _ip(self) -> str:
        return str(ipaddress.IPv4Address(0x0A000000 + self.rng.randrange(1 << 24)))

    def _sessions_make(self, count: int, user_ids: Sequence[int]) -> list[SessionRow]:
        rng, now = self.rng, self.now
        history = HISTORY.total_seconds()
        rows = []
        for _ in range(count):
            created = now - timedelta(seconds=rng.uniform(0, history))
            last_used = created + (now - created) * rng.random()
            revoked = rng.random() < REVOKED_SHARE
            rows.append(
                SessionRow(
                    sid=uuid.UUID(int=rng.getrandbits(128), version=4),
                    user_id=rng.choice(user_ids),
                    created_at=created,
                    last_used_at=last_used,
                    ip=self._ip(),
                    user_agent=rng.choice(USER_AGENTS),
                    transport=rng.choice(TRANSPORTS),
                    revoked_at=last_used + timedelta(seconds=rng.uniform(0, 3600)) if revoked else None,
                    revoke_reason=rng.choice(REVOKE_REASONS) if revoked else "",
                )
            )
        return rows

    @staticmethod
    def _session_columns() -> list[str]:
        return [
            "sid",
            "user_id",
            "created_at",
            "last_used_at",
            "ip",
            "user_agent",
            "transport",
            "session_key",
            "revoked_at",
            "revoke_reason",
        ]

    @staticmethod
    def _session_values(s: SessionRow) -> tuple[Any, ...]:
        return (
            s.sid,
            s.user_id,
            s.created_at,
            s.last_used_at,
            s.ip,
            s.user_agent,
            s.transport,
            "",
            s.revoked_at,
            s.revoke_reason,
        )

    @staticmethod
    def _token_columns() -> list[str]:
        return ["jti", "login_session_id", "user_id", "created_at", "expires_at", "blacklisted_at", "blacklist_reason"]

    def _tokens_make(self, count: int, sessions: Sequence[SessionRow]) -> Iterator[tuple[Any, ...]]:
        if not count:
            return
        lifetime = conf.refresh_lifetime()
        per_session, extra = divmod(count, len(sessions))
        rotated, revoked = OutstandingToken.BlacklistReason.ROTATED, OutstandingToken.BlacklistReason.REVOKED
        for index, s in enumerate(sessions):
            family = per_session + (1 if index < extra else 0)
            if not family:
                continue
            step = (s.last_used_at - s.created_at) / family
            times = [s.created_at + step * i for i in range(family)]
            times[-1] = s.last_used_at
            for i, issued in enumerate(times):
                blacklisted: datetime | None
                reason: str
                if i + 1 < family:
                    blacklisted, reason = times[i + 1], rotated
                elif s.revoked_at is not None:
                    blacklisted, reason = s.revoked_at, revoked
                else:
                    blacklisted, reason = None, ""
                yield (
                    uuid.UUID(int=self.rng.getrandbits(128), version=4),
                    s.sid,
                    s.user_id,
                    issued,
                    issued + lifetime,
                    blacklisted,
                    reason,
                )

    @staticmethod
    def _event_columns() -> list[str]:
        return ["created_at", "kind", "user_id", "actor_id", "email", "sid", "ip", "user_agent", "data"]

    def _events_make(self, count: int, sessions: Sequence[SessionRow]) -> Iterator[tuple[Any, ...]]:
        for i in range(count):
            s = sessions[i % len(sessions)] if sessions else None
            if s is None:
                yield (
                    self.now,
                    AuthEvent.Kind.SIGN_IN_FAILED,
                    None,
                    None,
                    "nobody@example.com",
                    None,
                    self._ip(),
                    "",
                    "{}",
                )
                continue
            data = json.dumps({"transport": s.transport})
            yield (s.created_at, AuthEvent.Kind.SIGN_IN, s.user_id, None, "", s.sid, s.ip, s.user_agent, data)

    # -- loading -------------------------------------------------------------

    def _rows_load(self, model: Any, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
        if self.copy:
            self._copy(model, columns, rows)
            return
        with transaction.atomic():
            for batch in _batches(rows, self.batch_size):
                objects = []
                for values in batch:
                    fields = dict(zip(columns, values, strict=True))
                    if "data" in fields:
                        fields["data"] = json.loads(fields["data"])
                    objects.append(model(**fields))
                model.objects.bulk_create(objects)

    def _copy(self, model: Any, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
        quote = connection.ops.quote_name
        db_columns = [model._meta.get_field(c.removesuffix("_id")).column for c in columns]
        sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(c) for c in db_columns)}) FROM STDIN"
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for values in rows:
                copy.write_row(values)


def _batches(items: Any, size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
