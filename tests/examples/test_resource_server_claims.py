"""The example's verifier, claim by claim, against a JWKS this test controls.

With the signing key in hand the test can make tokens the auth server never
would (wrong issuer, audience, type, expired, odd headers) and check that the
example refuses each for the right reason.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.live import BASE_DIR

ISSUER = "https://auth.example.test"
AUDIENCE = "orders-api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _load_example() -> ModuleType:
    path = BASE_DIR / "examples" / "resource_server" / "resource_server.py"
    spec = importlib.util.spec_from_file_location("resource_server_example", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


example = _load_example()


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = _public_jwk(key)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def _public_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))


JWKS = {"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    body = json.dumps(JWKS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def verifier(jwks_url: str) -> Any:
    settings = example.Settings.from_env(
        {"AUTH_JWKS_URL": jwks_url, "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "CLOCK_LEEWAY_SECONDS": "0"}
    )
    return example.AccessTokenVerifier(settings)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "token_type": "access",
        "sub": "42",
        "name": "Ada",
        "admin": False,
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], *, key: Any = RSA_KEY, alg: str = "RS256", **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": "rsa-1", **headers})


def test_a_well_formed_access_token_is_accepted(verifier: Any) -> None:
    assert verifier.verify(_sign(_claims()))["sub"] == "42"
    assert verifier.verify(_sign(_claims(), key=EC_KEY, alg="ES256", kid="ec-1"))["sub"] == "42"


@pytest.mark.parametrize(
    ("why", "token"),
    [
        ("wrong issuer", lambda: _sign(_claims(iss="https://evil.example"))),
        ("wrong audience", lambda: _sign(_claims(aud="another-api"))),
        ("no audience", lambda: _sign(_claims(aud=None))),
        ("refresh token", lambda: _sign(_claims(token_type="refresh"))),
        ("no token type", lambda: _sign(_claims(token_type=None))),
        ("expired", lambda: _sign(_claims(exp=int(time.time()) - 5))),
        ("no expiry", lambda: _sign(_claims(exp=None))),
        ("issued in the future", lambda: _sign(_claims(iat=int(time.time()) + 600))),
        ("algorithm other than the key's", lambda: _sign(_claims(), alg="PS256")),
        ("EC key named for an RSA token", lambda: _sign(_claims(), kid="ec-1")),
        ("unknown kid", lambda: _sign(_claims(), kid="nope")),
        ("no kid", lambda: jwt.encode(_claims(), RSA_KEY, algorithm="RS256")),
        ("critical extension", lambda: _sign(_claims(), crit=["exp"])),
        ("HMAC", lambda: jwt.encode(_claims(), "s" * 32, algorithm="HS256", headers={"kid": "rsa-1"})),
        ("oversized", lambda: _sign(_claims(padding="x" * 5000))),
    ],
)
def test_a_token_is_refused(verifier: Any, why: str, token: Any) -> None:
    with pytest.raises(example.TokenRejected):
        verifier.verify(token())


def test_an_unreachable_jwks_is_unavailable_not_valid() -> None:
    settings = example.Settings.from_env({"AUTH_JWKS_URL": "http://127.0.0.1:9/jwks.json", "AUTH_ISSUER": ISSUER})
    with pytest.raises(example.KeysUnavailable):
        example.AccessTokenVerifier(settings).verify(_sign(_claims()))


def test_without_an_audience_setting_tokens_without_aud_are_checked_for_the_rest(jwks_url: str) -> None:
    settings = example.Settings.from_env({"AUTH_JWKS_URL": jwks_url, "AUTH_ISSUER": ISSUER})
    verifier = example.AccessTokenVerifier(settings)
    assert verifier.verify(_sign(_claims(aud=None)))["sub"] == "42"
    with pytest.raises(example.TokenRejected):
        verifier.verify(_sign(_claims(aud=None, iss="https://evil.example")))
    # A token meant for some audience is not for a service that names none.
    with pytest.raises(example.TokenRejected):
        verifier.verify(_sign(_claims()))
