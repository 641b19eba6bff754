"""Encode and verify JWTs against the key ring (RFC 8725 rules), with no ORM use.

simplejwt's TokenBackend holds one key and trusts the configured algorithm
list; this one picks the key by `kid` and pins the algorithm to that key, so
`alg: none`, HMAC-with-the-public-key and algorithm substitution all fail
before a signature is even computed.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from . import conf
from .exceptions import TokenExpired, TokenInvalid
from .keyring import KeyRing, keyring

KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REQUIRED_CLAIMS = ("token_type", "sub", "sid", "jti", "iat", "exp", "iss")
# Clock skew accepted on `iat` from another node's clock.
IAT_LEEWAY_SECONDS = 60


class KeyRingBackend:
    """Sign with the current key; verify with whichever published key `kid` names."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def encode(self, payload: dict[str, Any]) -> str:
        key = self.ring.current()
        return jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})

    def decode(self, raw: str | bytes, *, token_type: str | None, now: datetime) -> dict[str, Any]:
        """Return the verified claims of `raw`, or raise TokenInvalid/TokenExpired."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("ascii")
            except UnicodeDecodeError as e:
                raise TokenInvalid() from e
        if not isinstance(raw, str) or not raw or len(raw) > conf.MAX_TOKEN_BYTES:
            raise TokenInvalid()
        try:
            header = jwt.get_unverified_header(raw)
        except InvalidTokenError as e:
            raise TokenInvalid() from e

        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_RE.match(kid):
            raise TokenInvalid()
        # We implement no JWS extensions, so any `crit` header is one we do
        # not understand (RFC 7515 §4.1.11): reject.
        if "crit" in header:
            raise TokenInvalid()
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise TokenInvalid()
        key = self.ring.verifying(kid)
        if key is None or header.get("alg") != key.algorithm:
            raise TokenInvalid()

        audience = conf.audience()
        try:
            claims: dict[str, Any] = jwt.decode(
                raw,
                key.public_key,
                algorithms=[key.algorithm],
                issuer=conf.issuer(),
                audience=audience,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    # exp and iat are checked below against our clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": True,
                    "verify_aud": True,
                },
            )
        except InvalidTokenError as e:
            raise TokenInvalid() from e

        timestamp = now.timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not _is_number(exp) or not _is_number(iat) or iat > timestamp + IAT_LEEWAY_SECONDS:
            raise TokenInvalid()
        if exp <= timestamp:
            raise TokenExpired()
        if token_type is not None and claims["token_type"] != token_type:
            raise TokenInvalid(code="token_not_valid", detail="Token has wrong type.")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise TokenInvalid()
        for name in ("sid", "jti"):
            if not _is_uuid(claims[name]):
                raise TokenInvalid()
        return claims


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


backend = KeyRingBackend(keyring)
