"""examples/resource_server against the real auth server: it trusts what the JWKS vouches for, nothing else.

The auth server runs under gunicorn on a fresh SQLite file; the example runs
as its own process and knows the auth server only through the JWKS URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import PASSWORD
from tests.live import (
    BASE_DIR,
    LiveProcess,
    auth_server_start,
    free_port,
    manage,
    process_start,
    server_env,
    wait_for,
)

pytestmark = pytest.mark.live

ISSUER = "https://auth.example.test"
AUDIENCE = "orders-api"
# Short on purpose: the revoked-key test waits for it to run out.
JWKS_CACHE_SECONDS = 2
EXAMPLE = BASE_DIR / "examples" / "resource_server" / "resource_server.py"


@pytest.fixture(scope="module")
def auth_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    workdir = tmp_path_factory.mktemp("auth")
    env = server_env(
        DATABASE_URL=f"sqlite:///{workdir / 'auth.sqlite3'}",
        CACHE_URL="locmemcache://",
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        JWT_KEYRING_REFRESH_SECONDS="0.5",
        LOGIN_RATE="1000/min",
    )
    manage("migrate", "--no-input", env=env)
    return env


@pytest.fixture(scope="module")
def auth_server(auth_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProcess]:
    server = auth_server_start("auth", env=auth_env, log_dir=tmp_path_factory.mktemp("auth-logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def resource_server(auth_server: LiveProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProcess]:
    port = free_port()
    env = server_env(
        AUTH_SERVER_URL=auth_server.url,
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        JWKS_CACHE_SECONDS=str(JWKS_CACHE_SECONDS),
        JWKS_REFRESH_COOLDOWN_SECONDS="1",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    server = process_start(
        "resource-server",
        [sys.executable, str(EXAMPLE)],
        env=env,
        port=port,
        log_dir=tmp_path_factory.mktemp("example-logs"),
        ready_path="/healthz",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def account(auth_server: LiveProcess) -> str:
    """An account made through the public signup API."""
    email = f"rs-{uuid.uuid4().hex[:8]}@example.com"
    with auth_server.client() as client:
        response = client.post("/api/accounts/signup/", json={"email": email, "password": PASSWORD, "name": "Grace"})
    assert response.status_code == 201, response.text
    return email


def _sign_in(auth_server: LiveProcess, email: str) -> dict[str, Any]:
    with auth_server.client() as client:
        response = client.post("/api/token/", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def _hello(resource_server: LiveProcess, token: str) -> Any:
    with resource_server.client() as client:
        return client.get("/hello", headers={"Authorization": f"Bearer {token}"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_a_valid_access_token_is_accepted(auth_server: LiveProcess, resource_server: LiveProcess, account: str) -> None:
    pair = _sign_in(auth_server, account)
    response = _hello(resource_server, pair["access"])
    assert response.status_code == 200, resource_server.log()
    claims = _claims_of(pair["access"])
    assert response.json() == {"sub": claims["sub"], "name": "Grace", "admin": False, "sid": claims["sid"]}


def test_a_refreshed_access_token_is_accepted(
    auth_server: LiveProcess, resource_server: LiveProcess, account: str
) -> None:
    pair = _sign_in(auth_server, account)
    with auth_server.client() as client:
        rotated = client.post("/api/token/refresh/", json={"refresh": pair["refresh"]})
    assert rotated.status_code == 200, rotated.text
    assert _hello(resource_server, rotated.json()["access"]).status_code == 200


def test_a_refresh_token_does_not_open_the_api(
    auth_server: LiveProcess, resource_server: LiveProcess, account: str
) -> None:
    pair = _sign_in(auth_server, account)
    response = _hello(resource_server, pair["refresh"])
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c"])
def test_missing_or_malformed_credentials_are_refused(resource_server: LiveProcess, header: str | None) -> None:
    with resource_server.client() as client:
        response = client.get("/hello", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def _forgeries(genuine: str) -> dict[str, str]:
    """Tokens an attacker can make from a genuine one without the private key."""
    header = jwt.get_unverified_header(genuine)
    claims = _claims_of(genuine)
    claims["admin"] = True  # what a forger would want
    kid = header["kid"]
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = (
        f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    head, _body, signature = genuine.split(".")
    tampered_claims = {**_claims_of(genuine), "sub": "1", "admin": True}
    return {
        "alg none with the real kid": signing_input + ".",
        "unknown RSA key with the real kid": jwt.encode(
            claims, attacker_key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"}
        ),
        "unknown RSA key with an unknown kid": jwt.encode(
            claims, attacker_key, algorithm="RS256", headers={"kid": "attacker-key", "typ": "JWT"}
        ),
        "payload swapped under the real signature": f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{signature}",
        "HS256 keyed with a random secret and the real kid": jwt.encode(
            claims, "guessable-secret-guessable-secret", algorithm="HS256", headers={"kid": kid}
        ),
        "the real kid with a jku pointing elsewhere": jwt.encode(
            claims,
            attacker_key,
            algorithm="RS256",
            headers={"kid": kid, "jku": "http://127.0.0.1:1/jwks.json"},
        ),
    }


def test_forged_tokens_are_refused(auth_server: LiveProcess, resource_server: LiveProcess, account: str) -> None:
    genuine = _sign_in(auth_server, account)["access"]
    assert _hello(resource_server, genuine).status_code == 200
    for name, forged in _forgeries(genuine).items():
        response = _hello(resource_server, forged)
        assert response.status_code == 401, name
        # The auth server itself agrees.
        with auth_server.client() as client:
            assert client.get("/api/me/", headers={"Authorization": f"Bearer {forged}"}).status_code == 401, name


def test_hmac_signed_with_the_published_public_key_is_refused(
    auth_server: LiveProcess, resource_server: LiveProcess, account: str
) -> None:
    """Algorithm confusion: HS256 keyed with the RSA public key the JWKS publishes."""
    genuine = _sign_in(auth_server, account)["access"]
    kid = jwt.get_unverified_header(genuine)["kid"]
    with auth_server.client() as client:
        jwks = client.get("/.well-known/jwks.json").json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    public_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps({**_claims_of(genuine), "admin": True}).encode())
    signature = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert _hello(resource_server, f"{header}.{payload}.{signature}").status_code == 401


def test_a_token_of_a_revoked_key_is_refused_once_the_jwks_cache_expires(
    auth_server: LiveProcess, resource_server: LiveProcess, auth_env: dict[str, str], account: str
) -> None:
    old = _sign_in(auth_server, account)["access"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    assert _hello(resource_server, old).status_code == 200  # the example now holds the key in its cache

    manage("revoke_signing_key", old_kid, env=auth_env)

    # The auth server drops the key at its next key-ring refresh...
    with auth_server.client() as client:
        jwks_without_old = wait_for(
            lambda: old_kid not in client.get("/.well-known/jwks.json").text,
            timeout=10,
            what="revoked key gone from the JWKS",
        )
    assert jwks_without_old
    # ...and the example, which never asks the auth server about tokens,
    # stops trusting it when its cached JWKS expires.
    wait_for(
        lambda: _hello(resource_server, old).status_code == 401,
        timeout=JWKS_CACHE_SECONDS + 15,
        interval=0.5,
        what="token of the revoked key refused by the example",
    )

    # The key that took over was published as `next` ahead of time, so its
    # tokens are trusted at once.
    new = _sign_in(auth_server, account)["access"]
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert _hello(resource_server, new).status_code == 200
