"""The JWKS document, and a resource server verifying our tokens offline from it alone."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import jwt
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from conftest import obtain
from tokens import signing_keys
from tokens.keyring import keyring
from tokens.models import SigningKey

pytestmark = pytest.mark.django_db

State = SigningKey.State
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
AUDIENCE = "https://api.example.com"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
MEMBERS = {
    "RSA": {"kty", "kid", "use", "alg", "n", "e"},
    "EC": {"kty", "kid", "use", "alg", "crv", "x", "y"},
    "OKP": {"kty", "kid", "use", "alg", "crv", "x"},
}
# RFC 7638 §3.2: the required members that a thumbprint hashes.
REQUIRED = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def _quiet(*args: str) -> None:
    call_command(*args, stdout=StringIO())


def _jwks(client: APIClient | None = None) -> Any:
    keyring.invalidate()  # what the commit of a key change does outside a test transaction
    return (client or APIClient()).get("/.well-known/jwks.json")


def _use_algorithm(algorithm: str) -> None:
    """Make `algorithm` the current key's algorithm, as an operator would."""
    _quiet("rotate_signing_key", "--force", "--algorithm", algorithm)
    _quiet("rotate_signing_key", "--force", "--algorithm", algorithm)
    keyring.invalidate()


@pytest.fixture
def fresh(clock: Any) -> None:
    SigningKey.objects.all().delete()
    keyring.reset()
    signing_keys.signing_key_bootstrap()


def test_jwks_lists_next_current_and_previous_only(fresh: None) -> None:
    _quiet("rotate_signing_key", "--force")
    _quiet("rotate_signing_key", "--force")
    _quiet("rotate_signing_key", "--force")
    previous = list(SigningKey.objects.filter(state=State.PREVIOUS).order_by("created_at"))
    assert len(previous) == 3
    SigningKey.objects.filter(pk=previous[0].pk).update(state=State.RETIRED)
    _quiet("revoke_signing_key", previous[1].kid)

    response = _jwks()

    published = {k["kid"]: k for k in response.json()["keys"]}
    states = dict(SigningKey.objects.values_list("kid", "state"))
    assert set(published) == {kid for kid, state in states.items() if state in ("next", "current", "previous")}
    assert previous[0].kid not in published and previous[1].kid not in published
    assert sorted(states[kid] for kid in published) == ["current", "next", "previous"]
    # The signing key comes first, for clients that just take the first one.
    assert states[response.json()["keys"][0]["kid"]] == "current"


def test_jwks_headers(settings: Any, fresh: None) -> None:
    settings.JWT_JWKS_MAX_AGE = 123

    response = _jwks()

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=123"


def test_jwks_is_public_and_read_only(fresh: None, user: Any) -> None:
    client = APIClient()
    assert client.get("/.well-known/jwks.json", HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 200
    assert client.post("/.well-known/jwks.json", {}).status_code == 405


def test_jwks_on_a_fresh_install_makes_the_first_key(db: None) -> None:
    SigningKey.objects.all().delete()
    keyring.reset()

    keys = APIClient().get("/.well-known/jwks.json").json()["keys"]

    assert len(keys) == 2
    assert {k["kid"] for k in keys} == set(SigningKey.objects.values_list("kid", flat=True))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jwks_members_per_key_type(fresh: None, algorithm: str) -> None:
    _use_algorithm(algorithm)

    keys = _jwks().json()["keys"]

    current = SigningKey.objects.get(state=State.CURRENT)
    jwk = next(k for k in keys if k["kid"] == current.kid)
    assert set(jwk) == MEMBERS[jwk["kty"]]
    assert (jwk["use"], jwk["alg"]) == ("sig", algorithm)
    if algorithm == "ES256":
        assert jwk["crv"] == "P-256"
    if algorithm == "EdDSA":
        assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    for published in keys:
        assert not PRIVATE_MEMBERS & set(published)
        canonical = json.dumps({m: published[m] for m in REQUIRED[published["kty"]]}, separators=(",", ":"))
        thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
        assert published["kid"] == thumbprint


# -- a resource server, offline --------------------------------------------------


class ResourceServer:
    """What a FastAPI service does: fetch the JWKS once, then verify with PyJWT alone."""

    def __init__(self, jwks_json: str, *, issuer: str, audience: str | None) -> None:
        self.keys = jwt.PyJWKSet.from_json(jwks_json)
        self.issuer = issuer
        self.audience = audience

    def verify(self, token: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token)["kid"]
        jwk = self.keys[kid]
        options: Any = {"require": ["exp", "iat", "iss", "sub", "jti", "sid", "token_type"]}
        if self.audience:
            options["require"].append("aud")
        # The algorithm comes from the published key, never from the token.
        return jwt.decode(
            token, jwk, algorithms=[jwk.algorithm_name], issuer=self.issuer, audience=self.audience, options=options
        )


def _resource_server(settings: Any) -> ResourceServer:
    return ResourceServer(_jwks().content.decode(), issuer=settings.JWT_ISSUER, audience=settings.JWT_AUDIENCE or None)


@pytest.mark.parametrize("audience", ["", AUDIENCE])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_resource_server_verifies_tokens_from_the_jwks_alone(
    settings: Any, fresh: None, staff_user: Any, algorithm: str, audience: str
) -> None:
    settings.JWT_AUDIENCE = audience
    settings.JWT_ISSUER = "https://auth.example.com"
    _use_algorithm(algorithm)
    pair = obtain(APIClient(), email=staff_user.email).json()
    server = _resource_server(settings)

    access = server.verify(pair["access"])
    refresh = server.verify(pair["refresh"])

    expected = {"token_type", "sub", "name", "admin", "sid", "jti", "iat", "exp", "iss"} | (
        {"aud"} if audience else set()
    )
    assert set(access) == expected
    assert set(refresh) == expected - {"name", "admin"}
    assert access["token_type"] == "access" and refresh["token_type"] == "refresh"
    assert access["sub"] == refresh["sub"] == str(staff_user.pk)
    assert access["name"] == staff_user.get_full_name()
    assert access["admin"] is True
    assert access["sid"] == refresh["sid"] and uuid.UUID(access["sid"])
    assert uuid.UUID(access["jti"]) != uuid.UUID(refresh["jti"])
    assert access["iss"] == "https://auth.example.com"
    if audience:
        assert access["aud"] == refresh["aud"] == AUDIENCE
    assert all(isinstance(c[k], int) for c in (access, refresh) for k in ("iat", "exp"))
    assert access["exp"] - access["iat"] == timedelta(minutes=settings.JWT_ACCESS_TOKEN_LIFETIME_MINUTES).seconds
    assert refresh["exp"] - refresh["iat"] == timedelta(days=settings.JWT_REFRESH_TOKEN_LIFETIME_DAYS).total_seconds()
    header = jwt.get_unverified_header(pair["access"])
    assert header == {"alg": algorithm, "typ": "JWT", "kid": SigningKey.objects.get(state=State.CURRENT).kid}


def test_resource_server_sees_admin_false_for_a_plain_user(settings: Any, fresh: None, user: Any) -> None:
    pair = obtain(APIClient()).json()

    claims = _resource_server(settings).verify(pair["access"])

    assert claims["admin"] is False and claims["name"] == "Ada Lovelace"


def test_resource_server_rejects_wrong_issuer_audience_and_expired(
    settings: Any, clock: Any, fresh: None, user: Any
) -> None:
    settings.JWT_AUDIENCE = AUDIENCE
    clock.advance(minutes=-(settings.JWT_ACCESS_TOKEN_LIFETIME_MINUTES + 1))
    stale = obtain(APIClient()).json()["access"]  # issued 16 minutes ago: expired by the wall clock
    clock.advance(minutes=settings.JWT_ACCESS_TOKEN_LIFETIME_MINUTES + 1)
    fresh_token = obtain(APIClient()).json()["access"]
    jwks = _jwks().content.decode()

    assert ResourceServer(jwks, issuer=settings.JWT_ISSUER, audience=AUDIENCE).verify(fresh_token)
    with pytest.raises(jwt.ExpiredSignatureError):
        ResourceServer(jwks, issuer=settings.JWT_ISSUER, audience=AUDIENCE).verify(stale)
    with pytest.raises(jwt.InvalidIssuerError):
        ResourceServer(jwks, issuer="https://other-issuer.example", audience=AUDIENCE).verify(fresh_token)
    with pytest.raises(jwt.InvalidAudienceError):
        ResourceServer(jwks, issuer=settings.JWT_ISSUER, audience="https://other-api.example").verify(fresh_token)


def test_resource_server_keeps_verifying_across_a_rotation(settings: Any, fresh: None, user: Any) -> None:
    before = obtain(APIClient()).json()["access"]
    _quiet("rotate_signing_key", "--force")
    after = obtain(APIClient()).json()["access"]

    server = _resource_server(settings)

    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    assert server.verify(before)["token_type"] == "access"
    assert server.verify(after)["token_type"] == "access"


def test_the_next_key_is_published_before_it_signs(settings: Any, fresh: None, user: Any) -> None:
    """A resource server that cached the JWKS before a rotation already knows the new signing key."""
    cached = _resource_server(settings)
    _quiet("rotate_signing_key", "--force")

    token = obtain(APIClient()).json()["access"]

    assert cached.verify(token)["token_type"] == "access"


def test_a_revoked_key_leaves_the_jwks(settings: Any, fresh: None, user: Any) -> None:
    token = obtain(APIClient()).json()["access"]
    _quiet("revoke_signing_key", jwt.get_unverified_header(token)["kid"])

    server = _resource_server(settings)

    with pytest.raises(KeyError):
        server.verify(token)
