"""DRF authentication: JWT (access token + live login session) and Django sessions.

A JWT-authenticated request costs one query: the login session joined with
its user. The key ring is in memory, so verification itself touches no
database.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from . import selectors
from .exceptions import SessionRevoked, TokenInvalid, UserInactive
from .tokens import AccessToken

# The key, in a Django session, of the login session it carries.
SESSION_SID_KEY = "tokens_sid"


def _failed(error: TokenInvalid) -> AuthenticationFailed:
    return AuthenticationFailed(error.detail, code=error.code)


class LoginSessionJWTAuthentication(JWTAuthentication):
    """Bearer access tokens whose login session is still live."""

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            return AccessToken(raw_token)
        except TokenInvalid as e:
            raise _failed(e) from e

    def get_user(self, validated_token: Any) -> Any:
        login_session = selectors.login_session_with_user(sid=validated_token.sid)
        if login_session is None:
            raise _failed(SessionRevoked())
        user = login_session.user
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
