"""The key commands through call_command: rotate, list, revoke, import, prune."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from conftest import obtain
from tokens import conf, keys, signing_keys
from tokens.keyring import keyring
from tokens.models import SigningKey

pytestmark = pytest.mark.django_db

State = SigningKey.State
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def _states() -> dict[str, str]:
    return dict(SigningKey.objects.values_list("kid", "state"))


def _one(state: str) -> SigningKey:
    return SigningKey.objects.get(state=state)


def _pem(key: Any, *, password: bytes | None = None) -> bytes:
    encryption: Any = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture
def fresh(clock: Any) -> tuple[SigningKey, SigningKey]:
    """A fresh install's current and next keys, made at the clock's now."""
    SigningKey.objects.all().delete()
    signing_keys.signing_key_bootstrap()
    return _one(State.CURRENT), _one(State.NEXT)


# -- rotate_signing_key ----------------------------------------------------------


def test_rotate_prints_the_new_states(clock: Any, fresh: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = fresh
    clock.advance(seconds=conf.jwks_max_age())

    out = run("rotate_signing_key")

    new_next = _one(State.NEXT)
    assert f"current:  {old_next.kid} (RS256)" in out
    assert f"previous: {old_current.kid}" in out
    assert f"next:     {new_next.kid} (RS256" in out
    assert _states() == {old_current.kid: State.PREVIOUS, old_next.kid: State.CURRENT, new_next.kid: State.NEXT}


def test_rotate_json(clock: Any, fresh: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = fresh

    data = json.loads(run("rotate_signing_key", "--force", "--json"))

    assert data["current"]["kid"] == old_next.kid and data["current"]["state"] == "current"
    assert data["previous"]["kid"] == old_current.kid and data["previous"]["state"] == "previous"
    assert data["next"]["state"] == "next"


@pytest.mark.parametrize("age", [0, 299])
def test_rotate_refuses_a_young_next_without_force(clock: Any, fresh: tuple[SigningKey, SigningKey], age: int) -> None:
    before = _states()
    clock.advance(seconds=age)

    with pytest.raises(CommandError, match="--force"):
        run("rotate_signing_key")

    assert _states() == before
    run("rotate_signing_key", "--force")
    assert _states()[fresh[1].kid] == State.CURRENT


@pytest.mark.parametrize("argv", [["--algorithm", "HS256"], ["--algorithm", "none"], ["--bogus"]])
def test_rotate_bad_arguments_are_command_errors(fresh: tuple[SigningKey, SigningKey], argv: list[str]) -> None:
    before = _states()

    with pytest.raises(CommandError):
        run("rotate_signing_key", *argv)

    assert _states() == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rotate_algorithm_signs_and_verifies_tokens(
    fresh: tuple[SigningKey, SigningKey], user: Any, api_client: APIClient, algorithm: str
) -> None:
    # --algorithm chooses the new *next* key; the second rotation promotes it.
    run("rotate_signing_key", "--force", "--algorithm", algorithm)
    assert _one(State.NEXT).algorithm == algorithm
    run("rotate_signing_key", "--force", "--algorithm", algorithm)
    keyring.invalidate()  # the commit that would tell the ring never happens inside a test transaction
    current = _one(State.CURRENT)
    assert current.algorithm == algorithm

    pair = obtain(api_client).json()

    header = jwt.get_unverified_header(pair["access"])
    assert (header["alg"], header["kid"], header["typ"]) == (algorithm, current.kid, "JWT")
    assert jwt.get_unverified_header(pair["refresh"])["alg"] == algorithm
    claims = jwt.decode(
        pair["access"],
        keys.public_key_load_pem(current.public_key),
        algorithms=[algorithm],
        issuer=conf.issuer(),
    )
    assert claims["token_type"] == "access"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    assert client.get("/api/me/").status_code == 200
    assert api_client.post("/api/token/verify/", {"token": pair["access"]}, format="json").status_code == 200
    refreshed = api_client.post("/api/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["access"])["alg"] == algorithm


# -- revoke_signing_key ----------------------------------------------------------


def test_revoke_current_hands_over_to_next(fresh: tuple[SigningKey, SigningKey]) -> None:
    old_current, old_next = fresh

    out = run("revoke_signing_key", old_current.kid)

    assert out.strip() == f"Revoked {old_current.kid}."
    states = _states()
    assert states[old_current.kid] == State.REVOKED
    assert states[old_next.kid] == State.CURRENT
    assert sorted(states.values()) == ["current", "next", "revoked"]


@pytest.mark.parametrize("argv", [["no-such-kid"], [], ["a", "b"]])
def test_revoke_bad_input_is_a_command_error(fresh: tuple[SigningKey, SigningKey], argv: list[str]) -> None:
    before = _states()

    with pytest.raises(CommandError):
        run("revoke_signing_key", *argv)

    assert _states() == before


# -- prune_signing_keys ----------------------------------------------------------


def test_prune_dry_run_then_prune(clock: Any, fresh: tuple[SigningKey, SigningKey]) -> None:
    old_current, _ = fresh
    run("rotate_signing_key", "--force")
    clock.advance(days=conf.refresh_lifetime().days, seconds=1)
    before = list(SigningKey.objects.order_by("kid").values())

    dry = run("prune_signing_keys", "--dry-run")

    assert dry.splitlines() == [f"Would retire {old_current.kid}", "Would retire 1 key(s)."]
    assert list(SigningKey.objects.order_by("kid").values()) == before

    out = run("prune_signing_keys")

    assert out.splitlines() == [f"Retired {old_current.kid}", "Retired 1 key(s)."]
    assert _states()[old_current.kid] == State.RETIRED
    assert run("prune_signing_keys").splitlines() == ["Retired 0 key(s)."]


def test_prune_keeps_a_previous_key_whose_tokens_may_still_be_live(
    clock: Any, fresh: tuple[SigningKey, SigningKey]
) -> None:
    run("rotate_signing_key", "--force")
    clock.advance(days=conf.refresh_lifetime().days - 1)

    assert run("prune_signing_keys").splitlines() == ["Retired 0 key(s)."]
    assert _states()[fresh[0].kid] == State.PREVIOUS


# -- import_signing_key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
    ids=["rsa2048", "rsa3072", "p256", "ed25519"],
)
def test_import_pem(tmp_path: Path, fresh: tuple[SigningKey, SigningKey], make_key: Any, algorithm: str) -> None:
    private = make_key()
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(private))

    out = run("import_signing_key", str(path))

    kid = keys.jwk_thumbprint(private.public_key())
    assert out.strip() == f"Imported {kid} ({algorithm}) as the next key."
    key = SigningKey.objects.get(kid=kid)
    assert (key.state, key.algorithm) == (State.NEXT, algorithm)
    assert _states()[fresh[1].kid] == State.RETIRED


def test_import_traditional_openssl_rsa_pem_as_ps256(tmp_path: Path, fresh: tuple[SigningKey, SigningKey]) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )

    run("import_signing_key", str(path), "--algorithm", "PS256")

    assert SigningKey.objects.get(kid=keys.jwk_thumbprint(private.public_key())).algorithm == "PS256"


BAD_PEMS = {
    "empty": lambda: b"",
    "garbage": lambda: b"\x00\x01\xfe\xff not a key",
    "truncated": lambda: b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "public-key": lambda: (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "encrypted": lambda: _pem(ec.generate_private_key(ec.SECP256R1()), password=b"secret"),
    "rsa-1024": lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    "p384": lambda: _pem(ec.generate_private_key(ec.SECP384R1())),
}


@pytest.mark.parametrize("name", sorted(BAD_PEMS))
def test_import_bad_files_are_command_errors(tmp_path: Path, fresh: tuple[SigningKey, SigningKey], name: str) -> None:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(BAD_PEMS[name]())
    before = list(SigningKey.objects.order_by("kid").values())

    with pytest.raises(CommandError) as raised:
        run("import_signing_key", str(path))

    assert type(raised.value) is CommandError
    assert "PRIVATE" not in str(raised.value)
    assert list(SigningKey.objects.order_by("kid").values()) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/missing.pem"], "Cannot read"),
        (["{tmp}"], "Cannot read"),
        (["{tmp}/ec.pem", "--algorithm", "RS256"], "RSA"),
        (["{tmp}/ec.pem", "--algorithm", "HS256"], "invalid choice"),
    ],
)
def test_import_bad_arguments_are_command_errors(
    tmp_path: Path, fresh: tuple[SigningKey, SigningKey], argv: list[str], message: str
) -> None:
    (tmp_path / "ec.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    before = _states()

    with pytest.raises(CommandError, match=message):
        run("import_signing_key", *[a.format(tmp=tmp_path) for a in argv])

    assert _states() == before


def test_import_refuses_a_duplicate_kid(tmp_path: Path, fresh: tuple[SigningKey, SigningKey]) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    run("import_signing_key", str(path))
    before = list(SigningKey.objects.order_by("kid").values())

    with pytest.raises(CommandError, match="already exists"):
        run("import_signing_key", str(path))

    assert list(SigningKey.objects.order_by("kid").values()) == before


def test_import_error_reaches_the_operator_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"not a key")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "DJANGO_READ_DOT_ENV": "0",
        "SECRET_KEY": "x",
        "JWT_KEY_ENCRYPTION_KEYS": ",".join(django_settings.JWT_KEY_ENCRYPTION_KEYS),
    }

    done = subprocess.run(
        [sys.executable, "manage.py", "import_signing_key", str(path)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("CommandError: Not a readable unencrypted PEM private key")
    assert "Traceback" not in done.stderr


# -- list_signing_keys -----------------------------------------------------------


def test_list_json_never_contains_private_material(tmp_path: Path, fresh: tuple[SigningKey, SigningKey]) -> None:
    path = tmp_path / "key.pem"
    pem = _pem(ed25519.Ed25519PrivateKey.generate())
    path.write_bytes(pem)
    run("import_signing_key", str(path))
    run("rotate_signing_key", "--force")
    run("revoke_signing_key", _one(State.PREVIOUS).kid)

    out = run("list_signing_keys", "--json")

    data = json.loads(out)
    assert {k["kid"] for k in data} == set(_states())
    for entry in data:
        assert set(entry) == {"kid", "algorithm", "state", "created_at", "activated_at", "retired_at", "revoked_at"}
    lowered = out.lower()
    assert "private" not in lowered and "begin" not in lowered
    for encrypted, public in SigningKey.objects.values_list("private_key_encrypted", "public_key"):
        assert encrypted[:16] not in out
        assert public.splitlines()[1] not in out
    assert pem.decode().splitlines()[1] not in out


def test_list_table_after_two_rotations_and_a_revocation(fresh: tuple[SigningKey, SigningKey]) -> None:
    first, second = fresh
    run("rotate_signing_key", "--force")
    third = _one(State.NEXT)
    run("rotate_signing_key", "--force")
    fourth = _one(State.NEXT)
    run("revoke_signing_key", third.kid)
    fifth = _one(State.NEXT)

    lines = run("list_signing_keys").splitlines()

    states = {line.split()[0]: line.split()[2] for line in lines}
    assert states == {
        first.kid: "previous",
        second.kid: "previous",
        third.kid: "revoked",
        fourth.kid: "current",
        fifth.kid: "next",
    }
    assert all("PRIVATE" not in line for line in lines)


def test_list_without_keys(db: None) -> None:
    SigningKey.objects.all().delete()

    assert "No signing keys yet" in run("list_signing_keys")
    assert json.loads(run("list_signing_keys", "--json")) == []


@pytest.mark.parametrize(
    "command",
    ["rotate_signing_key", "list_signing_keys", "revoke_signing_key", "import_signing_key", "prune_signing_keys"],
)
def test_every_command_has_help(command: str) -> None:
    from django.core.management import load_command_class

    instance = load_command_class("tokens", command)
    parser = instance.create_parser("manage.py", command)

    assert instance.help
    for action in parser._actions:
        if action.dest not in {"help", "version", "verbosity", "settings", "pythonpath", "traceback"} and (
            action.dest not in {"no_color", "force_color", "skip_checks"}
        ):
            assert action.help, f"{command} {action.dest} has no help"


def test_revoke_accepts_a_kid_that_starts_with_a_dash():
    # About one thumbprint in 64 begins with "-", which argparse took for an option.
    dashed = keys.private_key_generate("ES256")
    while not keys.jwk_thumbprint(dashed.public_key()).startswith("-"):
        dashed = keys.private_key_generate("ES256")
    pem = dashed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = signing_keys.signing_key_import(pem=pem)
    out = StringIO()
    call_command("revoke_signing_key", key.kid, stdout=out)
    assert SigningKey.objects.get(kid=key.kid).state == SigningKey.State.REVOKED
    assert key.kid in out.getvalue()
