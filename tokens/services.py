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
from django.db import transaction
from django.db.models import QuerySet

from . import clock, conf
from .audit import auth_event_record, auth_events_record
from .exceptions import SessionRevoked, TokenInvalid, TokenReused, UserInactive
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


def _token_pair_issue(*, login_session: LoginSession, user: Any, now: datetime) -> TokenPair:
    """Sign a new access/refresh pair for a login session and record the refresh token."""
    sid = str(login_session.sid)
    refresh = RefreshToken(now=now)
    refresh["sub"] = str(user.pk)
    refresh["sid"] = sid
    access = AccessToken(now=now)
    access["sub"] = str(user.pk)
    access["name"] = user.get_full_name() if hasattr(user, "get_full_name") else str(user)
    access["admin"] = bool(user.is_staff)
    access["sid"] = sid
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


def refresh_token_rotate(*, raw: str | bytes, client: ClientInfo) -> TokenPair:
    """Exchange a refresh token for a new pair, exactly once.

    The presented token's row is locked, checked and blacklisted, and the new
    pair recorded, in one transaction. A token that was already rotated is
    reuse (RFC 9700 §4.14.2): someone holds a copy, so the whole login
    session is revoked, committed, and the caller gets `token_reused`.

    Lock order is login session, then token, the same as every revocation
    (login_sessions_revoke), so a refresh racing a logout of the same family
    waits instead of deadlocking. The session's `last_used_at` update is
    what takes its lock, so the order costs no extra statement.
    """
    token = RefreshToken(raw)
    reused = False
    client_seen_at = clock.now()
    with transaction.atomic():
        LoginSession.objects.filter(sid=token.sid, revoked_at__isnull=True).update(
            last_used_at=client_seen_at, ip=client.ip, user_agent=_clip(client.user_agent)
        )
        # A primary-key lookup: `.get()`, not `.first()`, which would add
        # the model's ordering to a locked single-row read.
        try:
            row: OutstandingToken | None = (
                OutstandingToken.objects.select_for_update(of=("self",))
                .select_related("login_session__user")
                .get(jti=token.jti)
            )
        except OutstandingToken.DoesNotExist:
            row = None
        # Read the clock only once the lock is held: a request that waited
        # behind the winner must not look older than the winner's rotation.
        now = clock.now()
        grace = conf.reuse_grace()
        if row is None or str(row.login_session_id) != token.sid or str(row.user_id) != token["sub"]:
            raise TokenInvalid()
        login_session = row.login_session
        user = login_session.user
        if row.blacklisted_at is not None:
            within_grace = (
                row.blacklist_reason == OutstandingToken.BlacklistReason.ROTATED
                and login_session.revoked_at is None
                and grace.total_seconds() > 0
                and now - row.blacklisted_at < grace
            )
            if not within_grace:
                reused = True
        elif login_session.revoked_at is None:
            # The lock makes this the only writer; the condition keeps the
            # compare-and-set honest on databases without row locks.
            won = OutstandingToken.objects.filter(jti=row.jti, blacklisted_at__isnull=True).update(
                blacklisted_at=now, blacklist_reason=OutstandingToken.BlacklistReason.ROTATED
            )
            reused = won == 0
        if reused:
            auth_event_record(
                kind=AuthEvent.Kind.TOKEN_REUSED,
                user_id=user.pk,
                sid=login_session.sid,
                ip=client.ip,
                user_agent=client.user_agent,
                data={"jti": token.jti},
            )
            login_sessions_revoke(
                queryset=LoginSession.objects.filter(sid=login_session.sid), reason=Reason.TOKEN_REUSED
            )
        else:
            if login_session.revoked_at is not None:
                raise SessionRevoked()
            if not user.is_active:
                raise UserInactive()
            pair = _token_pair_issue(login_session=login_session, user=user, now=now)
            auth_event_record(kind=AuthEvent.Kind.REFRESH, user_id=user.pk, sid=login_session.sid, ip=client.ip)
    if reused:
        logger.warning("refresh token reuse: sid=%s jti=%s; login session revoked", token.sid, token.jti)
        raise TokenReused()
    return pair


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
