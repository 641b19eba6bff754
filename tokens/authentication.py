"""DRF authentication: JWT (access token + live login session) and Django sessions.

A JWT-authenticated request costs one query: the login session joined with
its user. The key ring is in memory, so verification itself touches no
database.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from rest_framework import authentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from .db import prepared_cursor
from .exceptions import SessionRevoked, TokenInvalid, UserInactive
from .models import LoginSession
from .statements import Select
from .tokens import AccessToken

# The key, in a Django session, of the login session it carries.
SESSION_SID_KEY = "tokens_sid"


def _failed(error: TokenInvalid) -> AuthenticationFailed:
    return AuthenticationFailed(error.detail, code=error.code)


class LiveSessionUser:
    """The user of a live login session, by `sid`: one query, its SQL compiled once.

    Every bearer-authenticated request asks this. Building the statement
    through the ORM (`filter`, joins, column list) cost more than the query's
    round trip and several times the RSA verification, for a statement that
    never changes but for the `sid`; `tokens.statements.Select` builds it
    once per database and each request only runs it (counted, wrapped,
    errors translated as usual). On PostgreSQL the statement is also
    prepared once per connection, which spares the server parsing and
    planning it on every request.
    """

    def __init__(self) -> None:
        self._select = Select(
            lambda sid: get_user_model()._default_manager.filter(
                login_sessions__sid=sid, login_sessions__revoked_at__isnull=True
            ),
            placeholder=uuid.UUID(int=0),
            field=LoginSession._meta.pk,
        )

    def __call__(self, *, sid: str) -> Any:
        """Return the active-or-not user whose live login session is `sid`, or None."""
        user_model = get_user_model()
        alias = router.db_for_read(user_model)
        with prepared_cursor(connections[alias]) as cursor:
            self._select.execute(cursor, alias, uuid.UUID(sid))
            row = self._select.fetchone(cursor, alias)
        if row is None:
            return None
        return user_model.from_db(alias, self._select.names(alias), row)

    def reset(self) -> None:
        """Forget the compiled statements (tests that swap the user model or database)."""
        self._select.reset()


live_session_user = LiveSessionUser()


class LoginSessionJWTAuthentication(JWTAuthentication):
    """Bearer access tokens whose login session is still live."""

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            return AccessToken(raw_token)
        except TokenInvalid as e:
            raise _failed(e) from e

    def get_user(self, validated_token: Any) -> Any:
        user = live_session_user(sid=validated_token.sid)
        if user is None:
            raise _failed(SessionRevoked())
        if str(user.pk) != validated_token["sub"]:
            raise _failed(TokenInvalid())
        if not user.is_active:
            raise _failed(UserInactive())
        return user


class LoginSessionSessionAuthentication(authentication.SessionAuthentication):
    """Django's session (browsers, admin), with DRF's CSRF enforcement.

    Revoking a login session deletes its Django session, so a live Django
    session always belongs to a live login session: no extra check needed.
    """


def request_sid(request: Request) -> str | None:
    """Return the login session id of an authenticated request, whatever carried it."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, AccessToken):
        return auth.sid
    session = getattr(request, "session", None)
    if session is not None:
        sid = session.get(SESSION_SID_KEY)
        return str(sid) if sid else None
    return None
