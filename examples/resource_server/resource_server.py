"""A resource server that trusts the auth server's access tokens, verified offline through its JWKS.

Standard library plus PyJWT only, so it runs anywhere Python does:

    AUTH_SERVER_URL=http://127.0.0.1:8000 AUTH_ISSUER=http://localhost:8000 python resource_server.py

It never calls the auth server per request: it fetches the JWKS document,
keeps it for JWKS_CACHE_SECONDS, and checks every token against it. See
README.md for the trade-off that implies (revocation is not seen offline).

Endpoints: `GET /healthz` (no token) and `GET /hello` (a valid access token
in `Authorization: Bearer ...`; answers with the token's user).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jwt
from jwt import PyJWKClient
from jwt.exceptions import InvalidTokenError, PyJWKClientConnectionError, PyJWKClientError

logger = logging.getLogger("resource_server")

KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Asymmetric algorithms only: an HMAC "signature" made with our own public key
# as the secret (algorithm confusion) must never verify.
ALLOWED_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "token_type", "sid", "jti"]
MAX_TOKEN_LENGTH = 4096


class TokenRejected(Exception):
    """The token is not one we accept; the message is safe to log, not to show."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched: answer 503, never 'valid'."""


@dataclass(frozen=True)
class Settings:
    jwks_url: str
    issuer: str
    audience: str | None
    jwks_cache_seconds: float
    jwks_refresh_cooldown_seconds: float
    leeway_seconds: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        server = env.get("AUTH_SERVER_URL", "http://127.0.0.1:8000").rstrip("/")
        return cls(
            jwks_url=env.get("AUTH_JWKS_URL") or f"{server}/.well-known/jwks.json",
            # Must equal the auth server's JWT_ISSUER exactly.
            issuer=env.get("AUTH_ISSUER", "http://localhost:8000"),
            # The auth server's JWT_AUDIENCE; empty means the server sets none.
            audience=env.get("AUTH_AUDIENCE") or None,
            jwks_cache_seconds=float(env.get("JWKS_CACHE_SECONDS", "300")),
            jwks_refresh_cooldown_seconds=float(env.get("JWKS_REFRESH_COOLDOWN_SECONDS", "30")),
            leeway_seconds=int(env.get("CLOCK_LEEWAY_SECONDS", "30")),
        )


class AccessTokenVerifier:
    """Verify access tokens against the auth server's JWKS, cached for a while."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # cache_keys stays off: PyJWT's per-kid cache never expires, so a
        # revoked key would stay trusted forever. The whole JWK set is cached
        # for `lifespan` seconds instead, and a token naming an unknown kid
        # forces at most one re-fetch per cooldown (a key promoted early, or
        # an attacker's random kids: either way, no fetch storm).
        self.jwks = PyJWKClient(
            settings.jwks_url,
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=settings.jwks_cache_seconds,
            cooldown_duration=settings.jwks_refresh_cooldown_seconds,
            timeout=5,
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid access token, or raise TokenRejected / KeysUnavailable."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("missing or oversized token")
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError as e:
            raise TokenRejected(f"malformed header: {e}") from e
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_RE.match(kid):
            raise TokenRejected("no usable kid")
        if "crit" in header:
            raise TokenRejected("critical header extension we do not implement")
        try:
            key = self.jwks.get_signing_key(kid)
        except PyJWKClientConnectionError as e:
            raise KeysUnavailable(str(e)) from e
        except PyJWKClientError as e:
            raise TokenRejected(f"kid {kid!r} is not in the JWKS") from e
        # The algorithm comes from the key the JWKS publishes, never from the
        # token: `alg: none`, HS256 and algorithm substitution all stop here.
        algorithm = key.algorithm_name
        if algorithm not in ALLOWED_ALGORITHMS or header.get("alg") != algorithm:
            raise TokenRejected(f"alg {header.get('alg')!r} does not match the key's {algorithm!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                leeway=self.settings.leeway_seconds,
                options={"require": REQUIRED_CLAIMS + (["aud"] if self.settings.audience else [])},
            )
        except InvalidTokenError as e:
            raise TokenRejected(str(e)) from e
        # A refresh token is signed by the same key; it must never open an API.
        if claims.get("token_type") != "access":
            raise TokenRejected("not an access token")
        return claims


def _json(
    start_response: Callable[..., Any], status: str, body: dict[str, Any], *headers: tuple[str, str]
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [data]


def make_app(verifier: AccessTokenVerifier) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Return the WSGI application."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path != "/hello":
            return _json(start_response, "404 Not Found", {"detail": "Not found.", "code": "not_found"})
        if method != "GET":
            return _json(
                start_response, "405 Method Not Allowed", {"detail": "GET only.", "code": "method_not_allowed"}
            )

        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        challenge = ("WWW-Authenticate", 'Bearer error="invalid_token"')
        if scheme.lower() != "bearer" or not token.strip():
            return _json(
                start_response,
                "401 Unauthorized",
                {"detail": "Bearer token required.", "code": "not_authenticated"},
                ("WWW-Authenticate", "Bearer"),
            )
        try:
            claims = verifier.verify(token.strip())
        except KeysUnavailable as e:
            logger.warning("JWKS unavailable: %s", e)
            return _json(
                start_response,
                "503 Service Unavailable",
                {"detail": "Try again shortly.", "code": "unavailable"},
                ("Retry-After", "5"),
            )
        except TokenRejected as e:
            logger.info("token rejected: %s", e)
            return _json(
                start_response, "401 Unauthorized", {"detail": "Invalid token.", "code": "token_not_valid"}, challenge
            )
        return _json(
            start_response,
            "200 OK",
            {
                "sub": claims["sub"],
                "name": claims.get("name", ""),
                "admin": bool(claims.get("admin")),
                "sid": claims["sid"],
            },
        )

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8001"))
    server = make_server(
        host,
        port,
        make_app(AccessTokenVerifier(settings)),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    logger.info("resource server on http://%s:%s, keys from %s", host, port, settings.jwks_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
