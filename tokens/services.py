"""Login sessions and tokens: issuing, rotation with reuse detection, revocation.

Every token is signed here and nowhere else. Every write owns its
transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import QuerySet

from . import audit, clock, conf, statements
from .audit import auth_event_record, auth_events_record
from .db import pipeline, prepared_cursor
from .exceptions import SessionRevoked, TokenInvalid, TokenReused, UserInactive
from .keyring import keyring
from .models import AuthEvent, LoginSession, OutstandingToken
from .tokens import AccessToken, RefreshToken

logger = logging.getLogger("tokens")

Transport = LoginSession.Transport
Reason = LoginSession.RevokeReason

USER_AGENT_MAX = LoginSession._meta.get_field("user_agent").max_length or 300


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, as recorded on the login session."""

    ip: str | None = None
    user_agent: str = ""


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    sid: str


def _clip(user_agent: str) -> str:
    return user_agent[:USER_AGENT_MAX]


# -- login sessions ------------------------------------------------------------


def login_session_create(
    *, user: Any, transport: str, client: ClientInfo, session_key: str = "", now: datetime | None = None
) -> LoginSession:
    """Record a new sign-in on one device."""
    now = now or clock.now()
    return LoginSession.objects.create(
        user=user,
        transport=transport,
        ip=client.ip,
        user_agent=_clip(client.user_agent),
        session_key=session_key,
        created_at=now,
        last_used_at=now,
    )


def login_session_bind_browser(*, sid: str, session_key: str) -> None:
    """Point a login session at the Django session that now carries it (after a key change)."""
    LoginSession.objects.filter(sid=sid).update(session_key=session_key)


def login_session_touch(*, sid: str, client: ClientInfo, now: datetime, interval: timedelta) -> bool:
    """Mark a live login session used now, unless it was marked less than `interval` ago."""
    updated = LoginSession.objects.filter(sid=sid, revoked_at__isnull=True, last_used_at__lt=now - interval).update(
        last_used_at=now, ip=client.ip, user_agent=_clip(client.user_agent)
    )
    return updated > 0


def _django_sessions_delete(session_keys: Iterable[str]) -> None:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for key in session_keys:
        if key:
            store(session_key=key).delete()


def login_sessions_revoke(*, queryset: QuerySet[LoginSession], reason: str, actor_id: Any = None) -> int:
    """Revoke every live login session in `queryset`; return how many were live.

    The one path every revocation takes (logout, reuse, password change,
    admin): mark the sessions, blacklist their refresh families, and delete
    their Django sessions.
    """
    now = clock.now()
    with transaction.atomic():
        rows = list(queryset.filter(revoked_at__isnull=True).values_list("sid", "session_key", "user_id"))
        if not rows:
            return 0
        sids = [sid for sid, _, _ in rows]
        LoginSession.objects.filter(sid__in=sids, revoked_at__isnull=True).update(revoked_at=now, revoke_reason=reason)
        OutstandingToken.objects.filter(login_session_id__in=sids, blacklisted_at__isnull=True).update(
            blacklisted_at=now, blacklist_reason=OutstandingToken.BlacklistReason.REVOKED
        )
        auth_events_record(
            AuthEvent(
                created_at=now,
                kind=AuthEvent.Kind.SESSION_REVOKED,
                user_id=user_id,
                actor_id=actor_id,
                sid=sid,
                data={"reason": reason},
            )
            for sid, _, user_id in rows
        )
        # Inside the transaction: with the database session backend the
        # deletion commits or rolls back with the revocation.
        _django_sessions_delete(key for _, key, _ in rows if key)
    logger.info("login sessions revoked: count=%d reason=%s actor=%s", len(rows), reason, actor_id)
    return len(rows)


def login_session_revoke(*, sid: str | uuid.UUID, reason: str, user_id: Any = None, actor_id: Any = None) -> bool:
    """Revoke one login session (of `user_id`, when given); False if it was not live."""
    queryset = LoginSession.objects.filter(sid=sid)
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    return login_sessions_revoke(queryset=queryset, reason=reason, actor_id=actor_id) > 0


def login_sessions_revoke_for_user(*, user_id: Any, reason: str, keep_sid: str | uuid.UUID | None = None) -> int:
    """Revoke every login session of a user, except `keep_sid` if given."""
    queryset = LoginSession.objects.filter(user_id=user_id)
    if keep_sid is not None:
        queryset = queryset.exclude(sid=keep_sid)
    return login_sessions_revoke(queryset=queryset, reason=reason)


# -- tokens --------------------------------------------------------------------


def _access_token(*, user: Any, sid: str, now: datetime) -> AccessToken:
    access = AccessToken(now=now)
    access["sub"] = str(user.pk)
    access["name"] = user.get_full_name() if hasattr(user, "get_full_name") else str(user)
    access["admin"] = bool(user.is_staff)
    access["sid"] = sid
    return access


def _token_pair_issue(*, login_session: LoginSession, user: Any, now: datetime) -> TokenPair:
    """Sign a new access/refresh pair for a login session and record the refresh token."""
    sid = str(login_session.sid)
    refresh = RefreshToken(now=now)
    refresh["sub"] = str(user.pk)
    refresh["sid"] = sid
    access = _access_token(user=user, sid=sid, now=now)
    OutstandingToken.objects.create(
        jti=refresh.jti,
        login_session_id=login_session.sid,
        user_id=user.pk,
        created_at=now,
        expires_at=refresh.expires_at,
    )
    return TokenPair(
        access=str(access),
        refresh=str(refresh),
        access_expires_at=access.expires_at,
        refresh_expires_at=refresh.expires_at,
        sid=sid,
    )


def token_pair_obtain(*, user: Any, client: ClientInfo) -> TokenPair:
    """Start a token login session for an authenticated user and issue its first pair."""
    if not user.is_active:
        raise UserInactive()
    now = clock.now()
    with transaction.atomic():
        login_session = login_session_create(user=user, transport=Transport.TOKEN, client=client, now=now)
        auth_event_record(
            kind=AuthEvent.Kind.SIGN_IN,
            user_id=user.pk,
            sid=login_session.sid,
            ip=client.ip,
            user_agent=client.user_agent,
            data={"transport": Transport.TOKEN},
        )
        return _token_pair_issue(login_session=login_session, user=user, now=now)


def token_pair_for_browser_session(*, sid: str, user: Any, client: ClientInfo) -> TokenPair:
    """Issue a pair bound to the login session a browser signed in with."""
    now = clock.now()
    with transaction.atomic():
        login_session = (
            LoginSession.objects.select_for_update().filter(sid=sid, user_id=user.pk, revoked_at__isnull=True).first()
        )
        if login_session is None:
            raise SessionRevoked()
        if not user.is_active:
            raise UserInactive()
        login_session.transport = Transport.BOTH
        login_session.last_used_at = now
        login_session.save(update_fields=["transport", "last_used_at"])
        return _token_pair_issue(login_session=login_session, user=user, now=now)


class _Reused(Exception):
    """Raised inside the rotation's transaction to roll it back before the family is revoked."""


@dataclass(frozen=True)
class _RotationWrites:
    touch_session: statements.Write
    blacklist_token: statements.Write
    insert_token: statements.Write
    insert_event: statements.Write


_rotation_writes: dict[str, _RotationWrites] = {}


def _rotation_writes_for(alias: str) -> _RotationWrites:
    writes = _rotation_writes.get(alias)
    if writes is None:
        connection = connections[alias]
        writes = _rotation_writes[alias] = _RotationWrites(
            touch_session=statements.update(
                connection,
                LoginSession,
                set_=["last_used_at", "ip", "user_agent"],
                where=["sid"],
                where_null=["revoked_at"],
            ),
            blacklist_token=statements.update(
                connection,
                OutstandingToken,
                set_=["blacklisted_at", "blacklist_reason"],
                where=["jti"],
                where_null=["blacklisted_at"],
            ),
            insert_token=statements.insert(
                connection,
                OutstandingToken,
                ["jti", "login_session", "user", "created_at", "expires_at", "blacklisted_at", "blacklist_reason"],
            ),
            insert_event=statements.insert(
                connection,
                AuthEvent,
                ["created_at", "kind", "user", "actor", "email", "sid", "ip", "user_agent", "data"],
            ),
        )
    return writes


def _user_columns() -> list[str]:
    return [field.attname for field in get_user_model()._meta.concrete_fields]


# The presented token's row, locked, with its login session's state and its user.
_TOKEN_LOCKED = statements.Select(
    lambda jti: (
        OutstandingToken.objects.select_for_update(of=("self",))
        .filter(jti=jti)
        .values_list(
            "login_session_id",
            "user_id",
            "blacklisted_at",
            "blacklist_reason",
            "login_session__revoked_at",
            *(f"user__{name}" for name in _user_columns()),
        )
    ),
    placeholder=uuid.UUID(int=0),
    field=OutstandingToken._meta.pk,
)


def refresh_token_rotate(*, raw: str | bytes, client: ClientInfo) -> TokenPair:
    """Exchange a refresh token for a new pair, exactly once.

    In one transaction: the login session is marked used (which takes its
    row lock), the presented token's row is blacklisted if it is not yet
    (a compare-and-set, under the row lock on PostgreSQL), then read locked,
    and the new refresh token and the audit event are recorded. On
    PostgreSQL all of that is one round trip (a pipeline of prepared
    statements), plus the COMMIT. Only then are the results judged, and
    anything but a clean rotation rolls everything back:

    - unknown token, or a row that names another session or user: invalid;
    - the compare-and-set lost, i.e. the token was already rotated: reuse
      (RFC 9700 §4.14.2), unless it was rotated less than
      `JWT_REFRESH_REUSE_GRACE_SECONDS` ago in a live session. Someone holds
      a copy, so after the rollback the whole login session is revoked in a
      transaction of its own and the caller gets `token_reused`;
    - a revoked login session or an inactive user: refused.

    Lock order is login session, then token, the same as every revocation
    (login_sessions_revoke), so a refresh racing a logout of the same family
    waits instead of deadlocking; the session's `last_used_at` update is
    what takes its lock, so the order costs no extra statement. The clock
    that judges the grace period is read once the lock is held: a request
    that waited behind the winner must not look older than the winner's
    rotation. (The winner's `blacklisted_at` is the time its request
    arrived, before any wait for the lock, so a wait only shortens the
    grace; it never lengthens it.)
    """
    token = RefreshToken(raw)
    user_model = get_user_model()
    try:
        sid = uuid.UUID(token.sid)
        jti = uuid.UUID(token.jti)
        user_pk = user_model._meta.pk.to_python(token["sub"])
    except (ValueError, ValidationError) as e:
        raise TokenInvalid() from e
    seen_at = clock.now()
    refresh = RefreshToken(now=seen_at)
    refresh["sub"] = str(user_pk)
    refresh["sid"] = str(sid)
    event = AuthEvent(created_at=seen_at, kind=AuthEvent.Kind.REFRESH, user_id=user_pk, sid=sid, ip=client.ip)
    alias = router.db_for_write(OutstandingToken)
    connection = connections[alias]
    writes = _rotation_writes_for(alias)
    # Re-read the key ring now if it is due, so that signing inside the
    # pipeline below never has to query the database.
    keyring.current()
    try:
        with transaction.atomic(using=alias):
            # Three cursors: the blacklist's row count and the locked row are
            # read back; the other writes only have to succeed (a failure
            # raises when the batch is synced), so they share one cursor.
            writes_cursor = prepared_cursor(connection)
            blacklisted = prepared_cursor(connection)
            locked = prepared_cursor(connection)
            try:
                with pipeline(connection):
                    writes_cursor.execute(
                        writes.touch_session.sql,
                        writes.touch_session.params(connection, [seen_at, client.ip, _clip(client.user_agent), sid]),
                    )
                    blacklisted.execute(
                        writes.blacklist_token.sql,
                        writes.blacklist_token.params(
                            connection, [seen_at, OutstandingToken.BlacklistReason.ROTATED, jti]
                        ),
                    )
                    _TOKEN_LOCKED.execute(locked, alias, jti)
                    writes_cursor.execute(
                        writes.insert_token.sql,
                        writes.insert_token.params(
                            connection, [uuid.UUID(refresh.jti), sid, user_pk, seen_at, refresh.expires_at, None, ""]
                        ),
                    )
                    writes_cursor.execute(
                        writes.insert_event.sql,
                        writes.insert_event.params_of(connection, event),
                    )
                    # Sign the new refresh token while the database works.
                    refresh_raw = str(refresh)
                won = blacklisted.rowcount == 1
                row = _TOKEN_LOCKED.fetchone(locked, alias)
            finally:
                for cursor in (writes_cursor, blacklisted, locked):
                    cursor.close()
            now = clock.now()
            if row is None:
                raise TokenInvalid()
            row_sid, row_user_pk, blacklisted_at, reason, session_revoked_at, *user_values = row
            if row_sid != sid or row_user_pk != user_pk:
                raise TokenInvalid()
            if not won:
                grace = conf.reuse_grace()
                within_grace = (
                    reason == OutstandingToken.BlacklistReason.ROTATED
                    and blacklisted_at is not None
                    and session_revoked_at is None
                    and grace.total_seconds() > 0
                    and now - blacklisted_at < grace
                )
                if not within_grace:
                    raise _Reused()
            if session_revoked_at is not None:
                raise SessionRevoked()
            user = user_model.from_db(alias, _user_columns(), user_values)
            if not user.is_active:
                raise UserInactive()
            # Signed before COMMIT: if signing fails, the rotation rolls back.
            access = _access_token(user=user, sid=str(sid), now=seen_at)
            access_raw = str(access)
    except _Reused:
        _family_revoke_for_reuse(sid=sid, jti=jti, user_pk=user_pk, client=client)
        raise TokenReused() from None
    audit.auth_event_log(event)
    return TokenPair(
        access=access_raw,
        refresh=refresh_raw,
        access_expires_at=access.expires_at,
        refresh_expires_at=refresh.expires_at,
        sid=str(sid),
    )


def _family_revoke_for_reuse(*, sid: uuid.UUID, jti: uuid.UUID, user_pk: Any, client: ClientInfo) -> None:
    with transaction.atomic(using=router.db_for_write(LoginSession)):
        auth_event_record(
            kind=AuthEvent.Kind.TOKEN_REUSED,
            user_id=user_pk,
            sid=sid,
            ip=client.ip,
            user_agent=client.user_agent,
            data={"jti": str(jti)},
        )
        login_sessions_revoke(queryset=LoginSession.objects.filter(sid=sid), reason=Reason.TOKEN_REUSED)
    logger.warning("refresh token reuse: sid=%s jti=%s; login session revoked", sid, jti)


def refresh_token_logout(*, raw: str | bytes) -> bool:
    """Revoke the login session a refresh token belongs to; False if it had already ended.

    A rotated or blacklisted (but genuine) token still names its session, so
    signing out with it works and is idempotent.
    """
    token = RefreshToken(raw)
    if not OutstandingToken.objects.filter(jti=token.jti, login_session_id=uuid.UUID(token.sid)).exists():
        raise TokenInvalid()
    return login_session_revoke(sid=token.sid, reason=Reason.LOGOUT)


def outstanding_tokens_blacklist(*, queryset: QuerySet[OutstandingToken], actor_id: Any = None) -> int:
    """Blacklist every unblacklisted refresh token in `queryset` (a staff action); return how many.

    Presenting a blacklisted token later counts as reuse, which revokes its
    whole login session, so blacklisting one token of a family is enough to
    end it. Rows are locked so that a concurrent rotation cannot win as well.
    """
    now = clock.now()
    with transaction.atomic():
        rows = list(
            OutstandingToken.objects.select_for_update()
            .filter(pk__in=queryset.values("pk"), blacklisted_at__isnull=True)
            # One lock order, so that two staff blacklisting overlapping rows cannot deadlock.
            .order_by("pk")
            .values_list("jti", "login_session_id", "user_id")
        )
        if not rows:
            return 0
        OutstandingToken.objects.filter(jti__in=[jti for jti, _, _ in rows], blacklisted_at__isnull=True).update(
            blacklisted_at=now, blacklist_reason=OutstandingToken.BlacklistReason.ADMIN
        )
        auth_events_record(
            AuthEvent(
                created_at=now,
                kind=AuthEvent.Kind.TOKEN_BLACKLISTED,
                user_id=user_id,
                actor_id=actor_id,
                sid=sid,
                data={"jti": str(jti), "reason": OutstandingToken.BlacklistReason.ADMIN},
            )
            for jti, sid, user_id in rows
        )
    logger.info("refresh tokens blacklisted: count=%d actor=%s", len(rows), actor_id)
    return len(rows)
