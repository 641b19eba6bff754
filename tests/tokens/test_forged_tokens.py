"""Forged, tampered and misused tokens: every one is a 401 JSON answer and changes nothing.

Each case starts from a genuine token of the kind the endpoint expects
(access for /api/me/ and /api/token/verify/, refresh for /api/token/refresh/),
changes one thing, and re-signs it the way an attacker could. The control
case, which changes nothing, must pass: so every rejection below is for the
one thing its case changed.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import get_default_algorithms
from rest_framework.test import APIClient

from conftest import obtain
from tokens import conf, keys, signing_keys
from tokens.keyring import keyring
from tokens.models import AuthEvent, LoginSession, OutstandingToken

pytestmark = pytest.mark.django_db

AUDIENCE = "https://api.example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], key: Any, *, alg: str | None = None) -> str:
    """Build a compact JWS by hand, so that any header, even a hostile one, can be signed."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    algorithm = alg or header.get("alg")
    if algorithm == "none":
        return signing_input + "."
    signature = get_default_algorithms()[str(algorithm)].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@dataclass
class Forge:
    """A genuine token taken apart: its header, claims and the key that signed it."""

    endpoint: str
    genuine: str
    other: str  # a genuine token of the other type
    header: dict[str, Any]
    claims: dict[str, Any]
    key: Any
    public_pem: str
    clock: Any
    on_commit: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def sign(
        self,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop_header: tuple[str, ...] = (),
        drop_claims: tuple[str, ...] = (),
        key: Any = None,
        alg: str | None = None,
    ) -> str:
        h = {k: v for k, v in {**self.header, **(header or {})}.items() if k not in drop_header}
        c = {k: v for k, v in {**self.claims, **(claims or {})}.items() if k not in drop_claims}
        return compact(h, c, key if key is not None else self.key, alg=alg)

    @property
    def lifetime_seconds(self) -> float:
        lifetime = conf.refresh_lifetime() if self.endpoint == "refresh" else conf.access_lifetime()
        return lifetime.total_seconds()


def _tamper_payload(f: Forge) -> str:
    head, _, signature = f.genuine.split(".")
    claims = {**f.claims, "admin": True, "sub": "1"}
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


def _tamper_signature(f: Forge) -> str:
    head, body, signature = f.genuine.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _expired(f: Forge) -> str:
    f.clock.advance(seconds=f.lifetime_seconds + 1)
    return f.genuine


def _wrong_type(f: Forge) -> str:
    # /api/token/verify/ takes either kind, so there an unknown kind stands in.
    if f.endpoint == "verify":
        return f.sign(claims={"token_type": "id"})
    return f.other


def _revoked_key(f: Forge) -> str:
    with f.on_commit(execute=True):
        signing_keys.signing_key_revoke(kid=f.header["kid"])
    return f.genuine


def _retired_key(f: Forge) -> str:
    with f.on_commit(execute=True):
        signing_keys.signing_key_rotate(force=True)
    f.clock.advance(days=conf.refresh_lifetime().days, seconds=1)
    with f.on_commit(execute=True):
        assert [k.kid for k in signing_keys.signing_keys_prune()] == [f.header["kid"]]
    # Still unexpired: a token signed at the old key's last moment, valid a year.
    return f.sign(claims={"iat": int(f.clock.now.timestamp()), "exp": int(f.clock.now.timestamp()) + 365 * 86400})


def _other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _embedded_jwk(f: Forge) -> str:
    attacker = _other_rsa_key()
    jwk = keys.public_jwk(attacker.public_key(), kid=f.header["kid"], algorithm="RS256")
    return f.sign(header={"jwk": jwk}, key=attacker)


def _oversized(f: Forge) -> str:
    token = f.sign(claims={"pad": "x" * 4096})
    assert len(token) > conf.MAX_TOKEN_BYTES
    return token


@dataclass(frozen=True)
class Case:
    make: Callable[[Forge], str]
    audience: str = ""


CASES: dict[str, Case] = {
    # Algorithms: the key named by kid pins the algorithm; the token's alg is never trusted.
    "alg-none": Case(lambda f: f.sign(header={"alg": "none"})),
    "alg-None": Case(lambda f: f.sign(header={"alg": "None"}, alg="none")),
    "alg-none-with-signature": Case(lambda f: f.sign(header={"alg": "none"}, alg="RS256")),
    "alg-missing": Case(lambda f: f.sign(drop_header=("alg",), alg="RS256")),
    "alg-HS256-public-pem-as-secret": Case(lambda f: f.sign(header={"alg": "HS256"}, key=f.public_pem.encode())),
    "alg-HS512-public-pem-as-secret": Case(lambda f: f.sign(header={"alg": "HS512"}, key=f.public_pem.encode())),
    "alg-RS512-same-key": Case(lambda f: f.sign(header={"alg": "RS512"})),
    "alg-PS256-same-key": Case(lambda f: f.sign(header={"alg": "PS256"})),
    "alg-ES256-ec-key": Case(lambda f: f.sign(header={"alg": "ES256"}, key=ec.generate_private_key(ec.SECP256R1()))),
    # Key ids.
    "kid-unknown": Case(lambda f: f.sign(header={"kid": keys.jwk_thumbprint(_other_rsa_key().public_key())})),
    "kid-too-long": Case(lambda f: f.sign(header={"kid": "a" * 65})),
    "kid-path": Case(lambda f: f.sign(header={"kid": "../../../etc/passwd"})),
    "kid-sql": Case(lambda f: f.sign(header={"kid": "x' OR '1'='1"})),
    "kid-space": Case(lambda f: f.sign(header={"kid": f.header["kid"] + " "})),
    "kid-empty": Case(lambda f: f.sign(header={"kid": ""})),
    "kid-int": Case(lambda f: f.sign(header={"kid": 1})),
    "kid-list": Case(lambda f: f.sign(header={"kid": [f.header["kid"]]})),
    "kid-null": Case(lambda f: f.sign(header={"kid": None})),
    "kid-missing": Case(lambda f: f.sign(drop_header=("kid",))),
    # Other header members.
    "crit-unknown": Case(lambda f: f.sign(header={"crit": ["x-unknown"], "x-unknown": True})),
    "crit-b64-false": Case(lambda f: f.sign(header={"crit": ["b64"], "b64": False})),
    "crit-empty": Case(lambda f: f.sign(header={"crit": []})),
    "typ-at+jwt": Case(lambda f: f.sign(header={"typ": "at+jwt"})),
    "typ-JWE": Case(lambda f: f.sign(header={"typ": "JWE"})),
    "typ-int": Case(lambda f: f.sign(header={"typ": 1})),
    "embedded-jwk-attacker-key": Case(_embedded_jwk),
    # Issuer and audience.
    "iss-wrong": Case(lambda f: f.sign(claims={"iss": "https://evil.example"})),
    "iss-list": Case(lambda f: f.sign(claims={"iss": [conf.issuer()]})),
    "aud-wrong": Case(lambda f: f.sign(claims={"aud": "https://other.example"}), audience=AUDIENCE),
    "aud-wrong-list": Case(lambda f: f.sign(claims={"aud": ["https://other.example"]}), audience=AUDIENCE),
    "aud-missing": Case(lambda f: f.sign(drop_claims=("aud",)), audience=AUDIENCE),
    "aud-unexpected": Case(lambda f: f.sign(claims={"aud": AUDIENCE})),
    # Kind and time.
    "token-type-wrong": Case(_wrong_type),
    "token-type-int": Case(lambda f: f.sign(claims={"token_type": 1})),
    "expired": Case(_expired),
    "exp-string": Case(lambda f: f.sign(claims={"exp": str(f.claims["exp"])})),
    "exp-bool": Case(lambda f: f.sign(claims={"exp": True})),
    "iat-far-future": Case(lambda f: f.sign(claims={"iat": f.claims["iat"] + 3600})),
    "iat-string": Case(lambda f: f.sign(claims={"iat": "0"})),
    "nbf-future": Case(lambda f: f.sign(claims={"nbf": f.claims["iat"] + 10 * 365 * 86400})),
    # Structure.
    "tampered-payload": Case(_tamper_payload),
    "tampered-signature": Case(_tamper_signature),
    "signature-stripped": Case(lambda f: f.genuine.rsplit(".", 1)[0] + "."),
    "truncated": Case(lambda f: f.genuine[:-10]),
    "two-segments": Case(lambda f: f.genuine.rsplit(".", 1)[0]),
    "five-segments-jwe-shape": Case(lambda f: f.genuine + ".AAAA.BBBB"),
    "header-not-json": Case(lambda f: b64(b"not json") + "." + f.genuine.split(".", 1)[1]),
    "header-json-array": Case(lambda f: b64(b"[]") + "." + f.genuine.split(".", 1)[1]),
    "non-ascii": Case(lambda f: f.genuine[:-4] + "é" + f.genuine[-3:]),
    "oversized": Case(_oversized),
    # Claims.
    "sub-int": Case(lambda f: f.sign(claims={"sub": int(f.claims["sub"]) if f.claims["sub"].isdigit() else 1})),
    "sub-list": Case(lambda f: f.sign(claims={"sub": [f.claims["sub"]]})),
    "sub-empty": Case(lambda f: f.sign(claims={"sub": ""})),
    "sub-other-user": Case(lambda f: f.sign(claims={"sub": f.extra["other_sub"]})),
    "sid-not-uuid": Case(lambda f: f.sign(claims={"sid": "not-a-uuid"})),
    "sid-int": Case(lambda f: f.sign(claims={"sid": 1})),
    "sid-sql": Case(lambda f: f.sign(claims={"sid": "' OR 1=1 --"})),
    "sid-unknown-uuid": Case(lambda f: f.sign(claims={"sid": str(uuid.uuid4())})),
    "jti-not-uuid": Case(lambda f: f.sign(claims={"jti": "x" * 200})),
    "jti-int": Case(lambda f: f.sign(claims={"jti": 7})),
    **{
        f"missing-{claim}": Case(lambda f, claim=claim: f.sign(drop_claims=(claim,)))  # type: ignore[misc]
        for claim in ("token_type", "sub", "sid", "jti", "iat", "exp", "iss")
    },
    # Keys that may no longer, or never did, sign.
    "signed-by-revoked-key": Case(_revoked_key),
    "signed-by-retired-key": Case(_retired_key),
    "unknown-key-with-copied-kid": Case(lambda f: f.sign(key=_other_rsa_key())),
}

ENDPOINTS = ("me", "verify", "refresh")


def send(client: APIClient, endpoint: str, token: str) -> Any:
    if endpoint == "me":
        return client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    if endpoint == "verify":
        return client.post("/api/token/verify/", {"token": token}, format="json")
    return client.post("/api/token/refresh/", {"refresh": token}, format="json")


def _state() -> tuple[Any, ...]:
    return (
        list(LoginSession.objects.order_by("sid").values_list("sid", "revoked_at")),
        list(OutstandingToken.objects.order_by("jti").values_list("jti", "blacklisted_at")),
        list(AuthEvent.objects.exclude(kind__startswith="key_").values_list("kind", flat=True)),
    )


@pytest.fixture
def forge_for(
    clock: Any, settings: Any, user: Any, staff_user: Any, django_capture_on_commit_callbacks: Any
) -> Callable[[str, str], Forge]:
    def make(endpoint: str, audience: str) -> Forge:
        settings.JWT_AUDIENCE = audience
        pair = obtain(APIClient()).json()
        access, refresh = pair["access"], pair["refresh"]
        genuine, other = (refresh, access) if endpoint == "refresh" else (access, refresh)
        current = keyring.current()
        return Forge(
            endpoint=endpoint,
            genuine=genuine,
            other=other,
            header=jwt.get_unverified_header(genuine),
            claims=jwt.decode(genuine, options={"verify_signature": False}),
            key=current.private_key,
            public_pem=keys.public_key_pem(current.public_key),
            clock=clock,
            on_commit=django_capture_on_commit_callbacks,
            extra={"other_sub": str(staff_user.pk)},
        )

    return make


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("audience", ["", AUDIENCE])
def test_control_the_unchanged_token_re_signed_by_hand_is_accepted(
    forge_for: Callable[[str, str], Forge], endpoint: str, audience: str
) -> None:
    forge = forge_for(endpoint, audience)
    token = forge.sign()

    response = send(APIClient(), endpoint, token)

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("case", "endpoint"), [(case, endpoint) for case in CASES for endpoint in ENDPOINTS])
def test_forged_token_is_refused_with_401_json(
    forge_for: Callable[[str, str], Forge], endpoint: str, case: str
) -> None:
    forge = forge_for(endpoint, CASES[case].audience)
    token = CASES[case].make(forge)
    before = _state()
    client = APIClient(raise_request_exception=False)

    response = send(client, endpoint, token)

    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) >= {"detail", "code"}
    assert body["code"] in {"token_not_valid", "session_revoked"}
    assert _state() == before
