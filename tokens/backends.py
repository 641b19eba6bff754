"""Encode and verify JWTs against the key ring (RFC 8725 rules), with no ORM use.

simplejwt's TokenBackend holds one key and trusts the configured algorithm
list; this one picks the key by `kid` and pins the algorithm to that key, so
`alg: none`, HMAC-with-the-public-key and algorithm substitution all fail
before a signature is even computed.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode

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
        """Return the verified claims of `raw`, or raise TokenInvalid/TokenExpired.

        Every authenticated request comes through here, so the token is
        parsed once: the header picks the key, the key's algorithm checks the
        signature over the segments as sent, and only then is the payload
        read. (PyJWT's `get_unverified_header` followed by `decode` parsed
        every segment twice and cost about four times the RSA verification.)
        The claim rules are PyJWT's, against our replaceable clock.
        """
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("ascii")
            except UnicodeDecodeError as e:
                raise TokenInvalid() from e
        if not isinstance(raw, str) or not raw or len(raw) > conf.MAX_TOKEN_BYTES or not raw.isascii():
            raise TokenInvalid()
        segments = raw.split(".")
        if len(segments) != 3:
            raise TokenInvalid()
        header_segment, payload_segment, signature_segment = segments
        header = _json_object(header_segment)

        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_RE.match(kid):
            raise TokenInvalid()
        # We implement no JWS extensions, so any `crit` header is one we do
        # not understand (RFC 7515 §4.1.11): reject. `b64` (RFC 7797) only
        # means something under `crit`; a token carrying it is not ours.
        if "crit" in header or "b64" in header:
            raise TokenInvalid()
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise TokenInvalid()
        key = self.ring.verifying(kid)
        if key is None or header.get("alg") != key.algorithm:
            raise TokenInvalid()
        # The algorithm is the key's, never the header's: the header only had
        # to agree with it.
        algorithm = _ALGORITHMS.get(key.algorithm)
        if algorithm is None:
            raise TokenInvalid()
        try:
            signature = base64url_decode(signature_segment)
            valid = algorithm.verify(f"{header_segment}.{payload_segment}".encode("ascii"), key.public_key, signature)
        except (ValueError, TypeError) as e:
            raise TokenInvalid() from e
        if not valid:
            raise TokenInvalid()

        claims = _json_object(payload_segment)
        _claims_check(claims)
        timestamp = now.timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not _is_number(exp) or not _is_number(iat) or iat > timestamp + IAT_LEEWAY_SECONDS:
            raise TokenInvalid()
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > timestamp):
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


# Verifier objects by algorithm name, built once (PyJWT's own implementations).
_ALGORITHMS = get_default_algorithms()


def _json_object(segment: str) -> dict[str, Any]:
    """Decode one base64url JSON-object segment of a compact JWS, or raise TokenInvalid."""
    try:
        value = json.loads(base64url_decode(segment))
    except (ValueError, TypeError, RecursionError) as e:
        raise TokenInvalid() from e
    if not isinstance(value, dict):
        raise TokenInvalid()
    return value


def _claims_check(claims: dict[str, Any]) -> None:
    """Require our claims and check `iss` and `aud` (PyJWT's rules)."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise TokenInvalid()
    if claims["iss"] != conf.issuer():
        raise TokenInvalid()
    audience = conf.audience()
    aud = claims.get("aud")
    if audience is None:
        # A token for some audience is not for a server that has none.
        if aud:
            raise TokenInvalid()
        return
    if isinstance(aud, str):
        aud = [aud]
    if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud) or audience not in aud:
        raise TokenInvalid()


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
