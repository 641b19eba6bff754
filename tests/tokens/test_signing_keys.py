"""Signing-key services: bootstrap, the state machine, revocation, pruning, import, constraints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.db import IntegrityError, transaction
from django.db.models import F
from rest_framework.test import APIClient

from conftest import obtain
from tokens import conf, keys, signing_keys
from tokens.exceptions import SigningKeyError
from tokens.keyring import keyring
from tokens.models import AuthEvent, SigningKey

pytestmark = pytest.mark.django_db

State = SigningKey.State


def _states() -> dict[str, str]:
    return dict(SigningKey.objects.values_list("kid", "state"))


def _one(state: str) -> SigningKey:
    return SigningKey.objects.get(state=state)


def _me(token: str) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/me/")


def _header_kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _pem(key: Any) -> bytes:
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run on_commit callbacks as a real commit would (each test runs inside a transaction)."""
    return django_capture_on_commit_callbacks


@pytest.fixture
def bootstrapped(clock: Any) -> tuple[SigningKey, SigningKey]:
    """A fresh install: one current and one next key, made now (not the ones `migrate` made)."""
    SigningKey.objects.all().delete()
    signing_keys.signing_key_bootstrap()
    return _one(State.CURRENT), _one(State.NEXT)


# -- bootstrap -----------------------------------------------------------------


def test_bootstrap_makes_a_current_and_a_next_key_once(clock: Any) -> None:
    SigningKey.objects.all().delete()
    signing_keys.signing_key_bootstrap()
    signing_keys.signing_key_bootstrap()

    assert sorted(_states().values()) == ["current", "next"]
    current = _one(State.CURRENT)
    assert current.algorithm == "RS256"
    assert current.activated_at == clock.now
    assert current.kid == keys.jwk_thumbprint(keys.public_key_load_pem(current.public_key))
    assert "PRIVATE" not in current.private_key_encrypted


def test_bootstrap_follows_jwt_algorithm(clock: Any, settings: Any) -> None:
    SigningKey.objects.all().delete()
    settings.JWT_ALGORITHM = "ES256"

    signing_keys.signing_key_bootstrap()

    assert set(SigningKey.objects.values_list("algorithm", flat=True)) == {"ES256"}


def test_first_use_makes_the_first_key(user: Any, api_client: APIClient) -> None:
    SigningKey.objects.all().delete()
    keyring.reset()

    response = obtain(api_client)

    assert response.status_code == 200
    assert _header_kid(response.json()["access"]) == _one(State.CURRENT).kid


# -- rotation ------------------------------------------------------------------


def test_rotate_moves_every_key_one_state_on(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = bootstrapped
    clock.advance(seconds=conf.jwks_max_age())

    result = signing_keys.signing_key_rotate()

    assert result.current.kid == old_next.kid
    assert result.previous is not None and result.previous.kid == old_current.kid
    states = _states()
    assert states[old_current.kid] == State.PREVIOUS
    assert states[old_next.kid] == State.CURRENT
    assert states[result.next.kid] == State.NEXT
    assert len(states) == 3
    promoted = SigningKey.objects.get(kid=old_next.kid)
    demoted = SigningKey.objects.get(kid=old_current.kid)
    assert promoted.activated_at == clock.now
    assert demoted.retired_at == clock.now
    assert result.next.created_at == clock.now
    event = AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_ROTATED)
    assert event.data == {
        "current": old_next.kid,
        "previous": old_current.kid,
        "next": result.next.kid,
        "forced": False,
    }


@pytest.mark.parametrize("age", [0, 1, 299])
def test_rotate_refuses_a_next_younger_than_the_jwks_max_age(
    clock: Any, bootstrapped: tuple[SigningKey, SigningKey], age: int
) -> None:
    before = _states()
    clock.advance(seconds=age)

    with pytest.raises(SigningKeyError, match="Wait, or use --force"):
        signing_keys.signing_key_rotate()

    assert _states() == before


def test_rotate_accepts_a_young_next_with_force(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    _, old_next = bootstrapped

    result = signing_keys.signing_key_rotate(force=True)

    assert result.current.kid == old_next.kid
    assert AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_ROTATED).data["forced"] is True


def test_rotate_follows_the_configured_max_age(
    clock: Any, settings: Any, bootstrapped: tuple[SigningKey, SigningKey]
) -> None:
    settings.JWT_JWKS_MAX_AGE = 60
    clock.advance(seconds=60)

    assert signing_keys.signing_key_rotate().current.kid == bootstrapped[1].kid


def test_rotate_without_a_next_key_needs_force(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = bootstrapped
    SigningKey.objects.filter(kid=old_next.kid).update(state=State.RETIRED)

    with pytest.raises(SigningKeyError, match="no `next` key"):
        signing_keys.signing_key_rotate()
    result = signing_keys.signing_key_rotate(force=True)

    assert result.previous is not None and result.previous.kid == old_current.kid
    assert _states()[result.current.kid] == State.CURRENT
    assert _states()[result.next.kid] == State.NEXT


def test_rotate_refuses_an_unknown_algorithm(bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    with pytest.raises(SigningKeyError, match="Unsupported algorithm"):
        signing_keys.signing_key_rotate(algorithm="HS256", force=True)


def test_previous_key_keeps_verifying_until_prune(
    clock: Any, user: Any, api_client: APIClient, bootstrapped: tuple[SigningKey, SigningKey], on_commit: Any
) -> None:
    old_current, _ = bootstrapped
    pair = obtain(api_client).json()
    assert _header_kid(pair["access"]) == old_current.kid
    # A long-lived token the old key signed: only pruning may end it.
    claims = jwt.decode(pair["access"], options={"verify_signature": False})
    long_lived = jwt.encode(
        {**claims, "exp": claims["exp"] + 30 * 86400},
        keyring.verifying(old_current.kid).private_key,  # type: ignore[union-attr]
        algorithm="RS256",
        headers={"kid": old_current.kid},
    )

    with on_commit(execute=True):
        signing_keys.signing_key_rotate(force=True)

    assert _me(pair["access"]).status_code == 200
    assert api_client.post("/api/token/refresh/", {"refresh": pair["refresh"]}, format="json").status_code == 200
    clock.advance(days=3)
    assert signing_keys.signing_keys_prune() == []
    assert _me(long_lived).status_code == 200

    clock.advance(days=5)
    with on_commit(execute=True):
        pruned = signing_keys.signing_keys_prune()

    assert [k.kid for k in pruned] == [old_current.kid]
    assert _states()[old_current.kid] == State.RETIRED
    response = _me(long_lived)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


# -- revocation ----------------------------------------------------------------


def test_revoke_current_promotes_next_at_once_and_makes_a_new_next(
    clock: Any, bootstrapped: tuple[SigningKey, SigningKey], on_commit: Any
) -> None:
    old_current, old_next = bootstrapped
    assert keyring.current().kid == old_current.kid

    with on_commit(execute=True):
        revoked = signing_keys.signing_key_revoke(kid=old_current.kid)

    states = _states()
    assert revoked.state == State.REVOKED and revoked.revoked_at == clock.now
    assert states[old_current.kid] == State.REVOKED
    assert states[old_next.kid] == State.CURRENT
    assert sorted(states.values()) == ["current", "next", "revoked"]
    assert SigningKey.objects.get(kid=old_next.kid).activated_at == clock.now
    assert keyring.current().kid == old_next.kid
    assert keyring.verifying(old_current.kid) is None
    assert AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_REVOKED).data == {"kid": old_current.kid}


def test_revoke_current_without_a_next_still_leaves_a_current_and_a_next(
    bootstrapped: tuple[SigningKey, SigningKey],
) -> None:
    old_current, old_next = bootstrapped
    SigningKey.objects.filter(kid=old_next.kid).update(state=State.RETIRED)

    signing_keys.signing_key_revoke(kid=old_current.kid)

    assert sorted(_states().values()) == ["current", "next", "retired", "revoked"]


def test_revoke_next_publishes_a_new_next(bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = bootstrapped

    signing_keys.signing_key_revoke(kid=old_next.kid)

    states = _states()
    assert states[old_current.kid] == State.CURRENT
    assert states[old_next.kid] == State.REVOKED
    assert sorted(states.values()) == ["current", "next", "revoked"]


@pytest.mark.parametrize("state", [State.PREVIOUS, State.RETIRED])
def test_revoke_a_key_that_no_longer_signs(bootstrapped: tuple[SigningKey, SigningKey], state: str) -> None:
    old_current, _ = bootstrapped
    signing_keys.signing_key_rotate(force=True)
    if state == State.RETIRED:
        SigningKey.objects.filter(kid=old_current.kid).update(state=State.RETIRED)
    before = _states()

    signing_keys.signing_key_revoke(kid=old_current.kid)

    assert _states() == {**before, old_current.kid: State.REVOKED}


def test_revoke_twice_is_idempotent(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    old_current, _ = bootstrapped
    signing_keys.signing_key_revoke(kid=old_current.kid)
    first = SigningKey.objects.get(kid=old_current.kid).revoked_at
    before = _states()
    clock.advance(minutes=5)

    signing_keys.signing_key_revoke(kid=old_current.kid)

    assert _states() == before
    assert SigningKey.objects.get(kid=old_current.kid).revoked_at == first
    assert AuthEvent.objects.filter(kind=AuthEvent.Kind.KEY_REVOKED).count() == 1


@pytest.mark.parametrize("kid", ["", "no-such-kid", "x" * 300, "' OR 1=1 --"])
def test_revoke_unknown_kid_changes_nothing(bootstrapped: tuple[SigningKey, SigningKey], kid: str) -> None:
    before = _states()

    with pytest.raises(SigningKeyError, match="No signing key"):
        signing_keys.signing_key_revoke(kid=kid)

    assert _states() == before


def test_revoke_makes_tokens_it_signed_fail_at_once_in_this_process(
    user: Any, api_client: APIClient, bootstrapped: tuple[SigningKey, SigningKey], on_commit: Any
) -> None:
    old_current, old_next = bootstrapped
    pair = obtain(api_client).json()
    assert _me(pair["access"]).status_code == 200

    with on_commit(execute=True):
        signing_keys.signing_key_revoke(kid=old_current.kid)

    me = _me(pair["access"])
    verify = api_client.post("/api/token/verify/", {"token": pair["access"]}, format="json")
    refresh = api_client.post("/api/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert [me.status_code, verify.status_code, refresh.status_code] == [401, 401, 401]
    assert me.json()["code"] == verify.json()["code"] == refresh.json()["code"] == "token_not_valid"
    fresh = obtain(api_client).json()
    assert _header_kid(fresh["access"]) == old_next.kid
    assert _me(fresh["access"]).status_code == 200


# -- pruning -------------------------------------------------------------------


def _previous_key(*, retired_days_ago: float, now: Any) -> SigningKey:
    private = keys.private_key_generate("RS256")
    public = private.public_key()
    return SigningKey.objects.create(
        kid=keys.jwk_thumbprint(public),
        algorithm="RS256",
        public_key=keys.public_key_pem(public),
        private_key_encrypted=keys.private_key_encrypt(private, encryption_keys=conf.key_encryption_keys()),
        state=State.PREVIOUS,
        created_at=now - timedelta(days=retired_days_ago + 30),
        activated_at=now - timedelta(days=retired_days_ago + 20),
        retired_at=now - timedelta(days=retired_days_ago),
    )


def test_prune_retires_only_expired_previous_keys(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    lifetime_days = conf.refresh_lifetime().days
    expired = _previous_key(retired_days_ago=lifetime_days + 1, now=clock.now)
    at_cutoff = _previous_key(retired_days_ago=lifetime_days, now=clock.now)
    young = _previous_key(retired_days_ago=lifetime_days - 0.01, now=clock.now)
    before = _states()

    pruned = signing_keys.signing_keys_prune()

    assert sorted(k.kid for k in pruned) == sorted([expired.kid, at_cutoff.kid])
    assert _states() == {**before, expired.kid: State.RETIRED, at_cutoff.kid: State.RETIRED}
    assert _states()[young.kid] == State.PREVIOUS
    assert signing_keys.signing_keys_prune() == []


def test_prune_dry_run_changes_nothing(clock: Any, bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    expired = _previous_key(retired_days_ago=30, now=clock.now)
    before = list(SigningKey.objects.order_by("kid").values())

    pruned = signing_keys.signing_keys_prune(dry_run=True)

    assert [k.kid for k in pruned] == [expired.kid]
    assert list(SigningKey.objects.order_by("kid").values()) == before


def test_prune_waits_for_the_longer_of_the_two_lifetimes(
    clock: Any, settings: Any, bootstrapped: tuple[SigningKey, SigningKey]
) -> None:
    settings.JWT_REFRESH_TOKEN_LIFETIME_DAYS = 1
    settings.JWT_ACCESS_TOKEN_LIFETIME_MINUTES = 3 * 24 * 60
    key = _previous_key(retired_days_ago=2, now=clock.now)

    assert signing_keys.signing_keys_prune() == []
    clock.advance(days=1)
    assert [k.kid for k in signing_keys.signing_keys_prune()] == [key.kid]


# -- import --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
)
def test_import_makes_the_key_next_and_retires_the_unpromoted_next(
    bootstrapped: tuple[SigningKey, SigningKey], make_key: Any, algorithm: str
) -> None:
    old_current, old_next = bootstrapped
    private = make_key()

    key = signing_keys.signing_key_import(pem=_pem(private))

    assert key.kid == keys.jwk_thumbprint(private.public_key())
    assert (key.state, key.algorithm) == (State.NEXT, algorithm)
    assert _states() == {old_current.kid: State.CURRENT, old_next.kid: State.RETIRED, key.kid: State.NEXT}
    assert AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_IMPORTED).data == {"kid": key.kid}


def test_import_rsa_as_ps256(bootstrapped: tuple[SigningKey, SigningKey]) -> None:
    key = signing_keys.signing_key_import(
        pem=_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), algorithm="PS256"
    )

    assert key.algorithm == "PS256"


@pytest.mark.parametrize("state", [State.CURRENT, State.NEXT, State.REVOKED])
def test_import_refuses_a_duplicate_kid_and_changes_nothing(
    bootstrapped: tuple[SigningKey, SigningKey], state: str
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    existing = signing_keys.signing_key_import(pem=_pem(private))
    if state == State.CURRENT:
        signing_keys.signing_key_rotate(force=True)
    elif state == State.REVOKED:
        signing_keys.signing_key_revoke(kid=existing.kid)
    assert _states()[existing.kid] == state
    before = list(SigningKey.objects.order_by("kid").values())

    with pytest.raises(SigningKeyError, match="already exists"):
        signing_keys.signing_key_import(pem=_pem(private))

    assert list(SigningKey.objects.order_by("kid").values()) == before


# -- constraints and encryption ---------------------------------------------------


@pytest.mark.parametrize("state", [State.CURRENT, State.NEXT])
def test_database_keeps_at_most_one_current_and_one_next(
    bootstrapped: tuple[SigningKey, SigningKey], state: str
) -> None:
    old_current, old_next = bootstrapped
    other = old_next if state == State.CURRENT else old_current

    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.filter(kid=other.kid).update(state=state)

    assert _states() == {old_current.kid: State.CURRENT, old_next.kid: State.NEXT}


def test_keys_made_under_an_old_encryption_key_still_sign_after_a_new_one_is_put_first(
    settings: Any, user: Any, api_client: APIClient, bootstrapped: tuple[SigningKey, SigningKey]
) -> None:
    settings.JWT_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.JWT_KEY_ENCRYPTION_KEYS]
    keyring.reset()

    response = obtain(api_client)

    assert response.status_code == 200
    assert _me(response.json()["access"]).status_code == 200


@pytest.mark.parametrize(
    "encryption_keys", [["a-wrong-key"], [Fernet.generate_key().decode()]], ids=["unusable", "wrong"]
)
def test_undecryptable_signing_key_gives_503_json_not_500(
    settings: Any, user: Any, bootstrapped: tuple[SigningKey, SigningKey], encryption_keys: list[str]
) -> None:
    settings.JWT_KEY_ENCRYPTION_KEYS = encryption_keys
    keyring.reset()
    client = APIClient(raise_request_exception=False)

    response = obtain(client)

    assert response.status_code == 503
    assert response.json()["code"] == "signing_key_unavailable"


# -- concurrent operators (PostgreSQL row locks) ------------------------------------


def _postgres_only() -> pytest.MarkDecorator:
    from django.db import connection

    return pytest.mark.skipif(connection.vendor != "postgresql", reason="row locking is tested on PostgreSQL")


def _at_once(*calls: Any) -> list[Any]:
    """Run each call in its own thread and connection, released together; return results or errors."""
    import threading

    from django.db import connections

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Any) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as e:  # noqa: BLE001 - the test inspects whatever happened
            results[index] = e
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@_postgres_only()
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("force", [True, False])
def test_two_rotations_at_once_never_break_the_key_ring(force: bool) -> None:
    SigningKey.objects.all().delete()
    signing_keys.signing_key_bootstrap()
    if not force:
        SigningKey.objects.update(created_at=F("created_at") - timedelta(seconds=conf.jwks_max_age()))

    results = _at_once(
        lambda: signing_keys.signing_key_rotate(force=force), lambda: signing_keys.signing_key_rotate(force=force)
    )

    errors = [r for r in results if isinstance(r, Exception)]
    # Each rotation either happens whole or is refused with an operator's message.
    assert all(isinstance(e, SigningKeyError) for e in errors), errors
    states = sorted(_states().values())
    rotations = len(results) - len(errors)
    assert rotations >= 1
    assert states == ["current", "next"] + ["previous"] * rotations


@pytest.mark.postgres
@_postgres_only()
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", ["revoke-current", "revoke-next", "import"])
def test_a_rotation_and_another_key_change_at_once_never_break_the_key_ring(other: str) -> None:
    SigningKey.objects.all().delete()
    signing_keys.signing_key_bootstrap()
    current, upcoming = _one(State.CURRENT), _one(State.NEXT)
    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    calls = {
        "revoke-current": lambda: signing_keys.signing_key_revoke(kid=current.kid),
        "revoke-next": lambda: signing_keys.signing_key_revoke(kid=upcoming.kid),
        "import": lambda: signing_keys.signing_key_import(pem=pem),
    }

    results = _at_once(lambda: signing_keys.signing_key_rotate(force=True), calls[other])

    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, SigningKeyError) for e in errors), errors
    states = list(_states().values())
    assert states.count(State.CURRENT) == 1
    assert states.count(State.NEXT) == 1


# -- the in-memory key ring ------------------------------------------------------


def test_a_warm_ring_verifies_and_signs_without_a_query(
    user: Any, api_client: APIClient, django_assert_num_queries: Any
) -> None:
    from tokens.tokens import AccessToken

    access = obtain(api_client).json()["access"]

    with django_assert_num_queries(0):
        for _ in range(3):
            assert AccessToken(access)["token_type"] == "access"
            keyring.current()


def test_an_unknown_kid_rereads_the_ring_once(
    bootstrapped: tuple[SigningKey, SigningKey], django_assert_num_queries: Any
) -> None:
    keyring.current()
    # A key made by another process, which this process was never told about.
    private = keys.private_key_generate("RS256")
    kid = keys.jwk_thumbprint(private.public_key())
    SigningKey.objects.filter(state=State.NEXT).update(state=State.RETIRED)
    SigningKey.objects.create(
        kid=kid,
        algorithm="RS256",
        public_key=keys.public_key_pem(private),
        private_key_encrypted=keys.private_key_encrypt(private, encryption_keys=conf.key_encryption_keys()),
        state=State.NEXT,
        created_at=bootstrapped[0].created_at,
    )

    with django_assert_num_queries(1):
        found = keyring.verifying(kid)

    assert found is not None and found.state == State.NEXT
