"""Key material: generation, PEM import, JWK export, RFC 7638 thumbprints, encryption at rest.

Pure functions over `cryptography` objects; no ORM here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

PRIVATE_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
RSA_KEY_SIZE = 2048
RSA_MIN_KEY_SIZE = 2048


class KeyMaterialError(ValueError):
    """Key material that cannot be used: wrong type, too weak, unreadable."""


def private_key_generate(algorithm: str) -> PrivateKey:
    """Make a new private key suited to `algorithm`."""
    if algorithm in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyMaterialError(f"Unsupported algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")


def private_key_check(key: Any, algorithm: str) -> PrivateKey:
    """Return `key` if it can sign with `algorithm`, else raise KeyMaterialError."""
    if algorithm in ("RS256", "PS256"):
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyMaterialError(f"{algorithm} needs an RSA private key.")
        if key.key_size < RSA_MIN_KEY_SIZE:
            raise KeyMaterialError(f"RSA keys must be at least {RSA_MIN_KEY_SIZE} bits (this one has {key.key_size}).")
        return key
    if algorithm == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KeyMaterialError("ES256 needs an EC private key on the P-256 curve.")
        return key
    if algorithm == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyMaterialError("EdDSA needs an Ed25519 private key.")
        return key
    raise KeyMaterialError(f"Unsupported algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")


def algorithm_for_key(key: Any) -> str:
    """Return the default algorithm for a private key's type."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise KeyMaterialError("Only RSA, EC P-256 and Ed25519 private keys are supported.")


def private_key_load_pem(data: bytes) -> PrivateKey:
    """Parse an unencrypted PEM private key (PKCS#1, SEC1 or PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyMaterialError(f"Not a readable unencrypted PEM private key ({e}).") from e
    algorithm_for_key(key)
    return key  # type: ignore[return-value]


def public_key_pem(key: PrivateKey | PublicKey) -> str:
    """Return the SubjectPublicKeyInfo PEM of a key's public half."""
    public: PublicKey = key.public_key() if isinstance(key, PRIVATE_KEY_TYPES) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def public_key_load_pem(pem: str) -> PublicKey:
    return serialization.load_pem_public_key(pem.encode("ascii"))  # type: ignore[return-value]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk_members(public: PublicKey) -> dict[str, str]:
    """Return the required JWK members of a public key (RFC 7517/7518/8037)."""
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        ec_numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(ec_numbers.x.to_bytes(size, "big")),
            "y": _b64(ec_numbers.y.to_bytes(size, "big")),
        }
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    raise KeyMaterialError("Unsupported public key type.")


def jwk_thumbprint(public: PublicKey) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public key, base64url without padding."""
    members = public_jwk_members(public)
    # RFC 7638 §3.2: only the required members, sorted, no whitespace.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public: PublicKey, *, kid: str, algorithm: str) -> dict[str, str]:
    """Return the JWK a JWKS document publishes for a verifying key."""
    return {**public_jwk_members(public), "kid": kid, "use": "sig", "alg": algorithm}


def _fernet(keys: list[str]) -> MultiFernet:
    if not keys:
        raise KeyMaterialError("JWT_KEY_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(k.encode("ascii")) for k in keys])
    except (ValueError, TypeError) as e:
        raise KeyMaterialError(
            "JWT_KEY_ENCRYPTION_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes each)."
        ) from e


def private_key_encrypt(key: PrivateKey, *, encryption_keys: list[str]) -> str:
    """Encrypt a private key (PKCS#8 DER) with the first encryption key."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return _fernet(encryption_keys).encrypt(der).decode("ascii")


def private_key_decrypt(token: str, *, encryption_keys: list[str]) -> PrivateKey:
    """Decrypt a private key with whichever encryption key made it."""
    try:
        der = _fernet(encryption_keys).decrypt(token.encode("ascii"))
    except InvalidToken as e:
        raise KeyMaterialError("No key in JWT_KEY_ENCRYPTION_KEYS decrypts this signing key.") from e
    return serialization.load_der_private_key(der, password=None)  # type: ignore[return-value]


def private_key_reencrypt(token: str, *, encryption_keys: list[str]) -> str:
    """Re-encrypt under the first encryption key (after adding a new one in front)."""
    try:
        return _fernet(encryption_keys).rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as e:
        raise KeyMaterialError("No key in JWT_KEY_ENCRYPTION_KEYS decrypts this signing key.") from e
