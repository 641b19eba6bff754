"""The errors of the tokens app; config.errors turns them into JSON responses."""

from __future__ import annotations

from config.exceptions import ServiceError


class TokenInvalid(ServiceError):
    """A token that is malformed, forged, expired or of the wrong kind."""

    status_code = 401
    code = "token_not_valid"
    detail = "Token is invalid or expired."


class TokenExpired(TokenInvalid):
    detail = "Token is expired."


class TokenReused(TokenInvalid):
    """A refresh token presented after it was rotated: the family is revoked."""

    code = "token_reused"
    detail = "Refresh token was already used; the login session has been revoked."


class SessionRevoked(TokenInvalid):
    code = "session_revoked"
    detail = "The login session has ended; sign in again."


class UserInactive(TokenInvalid):
    code = "user_inactive"
    detail = "The account is inactive."


class KeyRingUnavailable(ServiceError):
    status_code = 503
    code = "signing_key_unavailable"
    detail = "No signing key is available."


class SigningKeyError(ServiceError):
    """An operator's request about signing keys that cannot be carried out."""

    code = "signing_key_error"


class CsrfFailed(ServiceError):
    status_code = 403
    code = "csrf_failed"
    detail = "CSRF verification failed."
