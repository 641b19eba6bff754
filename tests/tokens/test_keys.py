"""Key material: RFC 7638 thumbprints, JWK members, encryption at rest, refused keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa, x25519

from tokens import keys

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMst"
    "n64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajr"
    "n1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _pem(key: Any) -> bytes:
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rfc7638_example_thumbprint() -> None:
    n = int.from_bytes(_b64decode(RFC7638_N), "big")
    public = rsa.RSAPublicNumbers(65537, n).public_key()

    members = keys.public_jwk_members(public)

    assert members == {"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}
    assert keys.jwk_thumbprint(public) == RFC7638_THUMBPRINT


def test_thumbprint_is_the_same_for_private_and_public_halves(rsa_key: rsa.RSAPrivateKey) -> None:
    public = keys.public_key_load_pem(keys.public_key_pem(rsa_key))

    assert keys.jwk_thumbprint(public) == keys.jwk_thumbprint(rsa_key.public_key())
    assert len(keys.jwk_thumbprint(public)) == 43  # 32 bytes, base64url without padding


def test_rsa_jwk_members(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = keys.public_jwk(rsa_key.public_key(), kid="k1", algorithm="RS256")

    numbers = rsa_key.public_key().public_numbers()
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["alg"] == "RS256" and jwk["kid"] == "k1"
    assert int.from_bytes(_b64decode(jwk["n"]), "big") == numbers.n
    assert _b64decode(jwk["n"])[0] != 0  # RFC 7518 §6.3.1.1: no leading zero octet
    assert jwk["e"] == "AQAB"
    assert "=" not in jwk["n"]


def test_ec_jwk_members() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = keys.public_jwk(private.public_key(), kid="k2", algorithm="ES256")

    numbers = private.public_key().public_numbers()
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
    # RFC 7518 §6.2.1.2: coordinates are full-length (32 octets), leading zeros kept.
    assert len(_b64decode(jwk["x"])) == 32 and len(_b64decode(jwk["y"])) == 32
    assert int.from_bytes(_b64decode(jwk["x"]), "big") == numbers.x
    assert int.from_bytes(_b64decode(jwk["y"]), "big") == numbers.y


def test_ed25519_jwk_members() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = keys.public_jwk(private.public_key(), kid="k3", algorithm="EdDSA")

    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert _b64decode(jwk["x"]) == raw


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "EdDSA"])
def test_thumbprint_hashes_the_canonical_required_members(algorithm: str) -> None:
    import hashlib

    public = keys.private_key_generate(algorithm).public_key()
    members = keys.public_jwk_members(public)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()

    assert keys.jwk_thumbprint(public) == base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(
        b"="
    ).decode("ascii")


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "EdDSA"])
def test_generated_keys_fit_their_algorithm(algorithm: str) -> None:
    private = keys.private_key_generate(algorithm)

    assert keys.private_key_check(private, algorithm) is private
    if isinstance(private, rsa.RSAPrivateKey):
        assert private.key_size >= 2048


def test_encrypt_decrypt_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    encryption_keys = [Fernet.generate_key().decode()]

    token = keys.private_key_encrypt(rsa_key, encryption_keys=encryption_keys)
    back = keys.private_key_decrypt(token, encryption_keys=encryption_keys)

    assert b"PRIVATE" not in token.encode() and "MII" not in token
    assert isinstance(back, rsa.RSAPrivateKey)
    assert back.private_numbers() == rsa_key.private_numbers()


def test_an_old_encryption_key_still_decrypts_when_a_new_one_is_put_first(rsa_key: rsa.RSAPrivateKey) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = keys.private_key_encrypt(rsa_key, encryption_keys=[old])

    back = keys.private_key_decrypt(token, encryption_keys=[new, old])
    reencrypted = keys.private_key_reencrypt(token, encryption_keys=[new, old])

    assert back.private_numbers() == rsa_key.private_numbers()  # type: ignore[union-attr]
    # After re-encryption the new key alone is enough: the old one can go.
    assert keys.private_key_decrypt(reencrypted, encryption_keys=[new]).private_numbers() == (  # type: ignore[union-attr]
        rsa_key.private_numbers()
    )


def test_a_wrong_encryption_key_gives_a_clear_error(rsa_key: rsa.RSAPrivateKey) -> None:
    token = keys.private_key_encrypt(rsa_key, encryption_keys=[Fernet.generate_key().decode()])

    with pytest.raises(keys.KeyMaterialError, match="JWT_KEY_ENCRYPTION_KEYS"):
        keys.private_key_decrypt(token, encryption_keys=[Fernet.generate_key().decode()])
    with pytest.raises(keys.KeyMaterialError, match="JWT_KEY_ENCRYPTION_KEYS"):
        keys.private_key_reencrypt(token, encryption_keys=[Fernet.generate_key().decode()])


@pytest.mark.parametrize("encryption_keys", [[], ["not-a-fernet-key"], ["c2hvcnQ="]])
def test_unusable_encryption_keys_give_a_clear_error(rsa_key: rsa.RSAPrivateKey, encryption_keys: list[str]) -> None:
    with pytest.raises(keys.KeyMaterialError, match="JWT_KEY_ENCRYPTION_KEYS"):
        keys.private_key_encrypt(rsa_key, encryption_keys=encryption_keys)


def _rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    for algorithm in ("RS256", "PS256"):
        with pytest.raises(keys.KeyMaterialError, match="at least 2048"):
            keys.private_key_check(weak, algorithm)


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "RS256", id="ec-as-RS256"),
        pytest.param(lambda: ed25519.Ed25519PrivateKey.generate(), "PS256", id="ed25519-as-PS256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES256", id="p384-as-ES256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "ES256", id="secp256k1-as-ES256"),
        pytest.param(_rsa2048, "ES256", id="rsa-as-ES256"),
        pytest.param(_rsa2048, "EdDSA", id="rsa-as-EdDSA"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "EdDSA", id="ec-as-EdDSA"),
        pytest.param(lambda: ed25519.Ed25519PrivateKey.generate(), "HS256", id="unknown-algorithm"),
    ],
)
def test_wrong_key_types_are_refused(make_key: Any, algorithm: str) -> None:
    with pytest.raises(keys.KeyMaterialError):
        keys.private_key_check(make_key(), algorithm)


@pytest.mark.parametrize("algorithm", ["HS256", "none", "RS512", ""])
def test_unsupported_algorithm_is_not_generated(algorithm: str) -> None:
    with pytest.raises(keys.KeyMaterialError, match="Unsupported algorithm"):
        keys.private_key_generate(algorithm)


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
)
def test_pem_import_reads_each_supported_type(make_key: Any, algorithm: str) -> None:
    private = make_key()

    loaded = keys.private_key_load_pem(_pem(private))

    assert keys.algorithm_for_key(loaded) == algorithm
    assert keys.jwk_thumbprint(loaded.public_key()) == keys.jwk_thumbprint(private.public_key())


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff garbage", id="garbage"),
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="truncated"),
        pytest.param(
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            id="public-key",
        ),
        pytest.param(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            id="encrypted",
        ),
        pytest.param(_pem(dsa.generate_private_key(key_size=2048)), id="dsa"),
        pytest.param(_pem(x25519.X25519PrivateKey.generate()), id="x25519"),
    ],
)
def test_unusable_pem_is_refused_with_key_material_error(pem: bytes) -> None:
    with pytest.raises(keys.KeyMaterialError):
        keys.private_key_load_pem(pem)
