"""Signing-key services: bootstrap, rotation, revocation, import, pruning.

The life of a key: `next` (published so that resource servers cache it
before it signs) -> `current` (signs) -> `previous` (verifies until every
token it signed has expired) -> `retired`. `revoked` is the emergency exit
from any state. Every change runs in one transaction and tells this
process's key ring at commit; other processes notice on their next ring
refresh (JWT_KEYRING_REFRESH_SECONDS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from . import clock, conf, keys
from .audit import auth_event_record
from .exceptions import SigningKeyError
from .keyring import keyring
from .models import AuthEvent, SigningKey

State = SigningKey.State


@dataclass(frozen=True)
class RotationResult:
    current: SigningKey
    previous: SigningKey | None
    next: SigningKey


def _key_create(*, private_key: keys.PrivateKey, algorithm: str, state: str, now: datetime) -> SigningKey:
    keys.private_key_check(private_key, algorithm)
    public = private_key.public_key()
    kid = keys.jwk_thumbprint(public)
    if SigningKey.objects.filter(kid=kid).exists():
        raise SigningKeyError(f"A signing key with kid {kid} already exists.")
    return SigningKey.objects.create(
        kid=kid,
        algorithm=algorithm,
        public_key=keys.public_key_pem(public),
        private_key_encrypted=keys.private_key_encrypt(private_key, encryption_keys=conf.key_encryption_keys()),
        state=state,
        created_at=now,
        activated_at=now if state == State.CURRENT else None,
    )


def _algorithm_check(algorithm: str | None) -> str:
    algorithm = algorithm or conf.algorithm()
    if algorithm not in keys.ALGORITHMS:
        raise SigningKeyError(f"Unsupported algorithm {algorithm!r}; choose one of {', '.join(keys.ALGORITHMS)}.")
    return algorithm


def _ring_changed() -> None:
    # Now, for reads inside this transaction, and again at commit, for
    # other threads of this process that re-read in between.
    keyring.invalidate()
    transaction.on_commit(keyring.invalidate)


def _key_changes_serialise() -> None:
    """Wait until no other rotation, revocation or import is in flight (inside a transaction).

    Every key change locks the `next` and `current` rows here first, in one
    order, so that two changes queue instead of deadlocking. The caller must
    read the keys again afterwards: on PostgreSQL a locking read that had to
    wait still answers from the snapshot it started with, so it would miss
    the `next` key the other change just made, and make a second one.
    """
    list(
        SigningKey.objects.select_for_update()
        .filter(state__in=[State.NEXT, State.CURRENT])
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def signing_key_bootstrap() -> None:
    """Make a current and a next key if there is no current key (first use, migrate)."""
    if SigningKey.objects.filter(state=State.CURRENT).exists():
        return
    algorithm = _algorithm_check(None)
    now = clock.now()
    try:
        with transaction.atomic():
            if SigningKey.objects.select_for_update().filter(state=State.CURRENT).exists():
                return
            _key_create(
                private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.CURRENT, now=now
            )
            if not SigningKey.objects.filter(state=State.NEXT).exists():
                _key_create(
                    private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.NEXT, now=now
                )
            _ring_changed()
    except IntegrityError:
        # Another process made the first key at the same moment: use theirs.
        return


def signing_key_rotate(*, algorithm: str | None = None, force: bool = False, actor_id: Any = None) -> RotationResult:
    """Promote next to current, demote current to previous, and make a new next.

    A `next` key is promoted only after it has been published for at least
    JWT_JWKS_MAX_AGE, so every resource server's cached JWKS already holds
    it when the first token it signs arrives. `force` skips that wait.
    """
    algorithm = _algorithm_check(algorithm)
    now = clock.now()
    with transaction.atomic():
        _key_changes_serialise()
        locked = {
            k.state: k for k in SigningKey.objects.select_for_update().filter(state__in=[State.NEXT, State.CURRENT])
        }
        upcoming = locked.get(State.NEXT)
        current = locked.get(State.CURRENT)
        if upcoming is None:
            # Normally a next key always exists; without one, only --force may
            # promote a key that no resource server has seen yet.
            if not force:
                raise SigningKeyError("There is no `next` key to promote; use --force to make and promote one now.")
            upcoming = _key_create(
                private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.NEXT, now=now
            )
        else:
            age = (now - upcoming.created_at).total_seconds()
            if age < conf.jwks_max_age() and not force:
                raise SigningKeyError(
                    f"The next key {upcoming.kid} has been published for {int(age)} s only; "
                    f"resource servers may cache the JWKS for {conf.jwks_max_age()} s. "
                    "Wait, or use --force."
                )
        if current is not None:
            current.state = State.PREVIOUS
            current.retired_at = now
            current.save(update_fields=["state", "retired_at", "updated_at"])
        upcoming.state = State.CURRENT
        upcoming.activated_at = now
        upcoming.save(update_fields=["state", "activated_at", "updated_at"])
        new_next = _key_create(
            private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.NEXT, now=now
        )
        auth_event_record(
            kind=AuthEvent.Kind.KEY_ROTATED,
            actor_id=actor_id,
            data={
                "current": upcoming.kid,
                "previous": current.kid if current else None,
                "next": new_next.kid,
                "forced": force,
            },
        )
        _ring_changed()
    return RotationResult(current=upcoming, previous=current, next=new_next)


def signing_key_revoke(*, kid: str, actor_id: Any = None) -> SigningKey:
    """Revoke a key at once; if it was current, the next key (or a new one) takes over."""
    now = clock.now()
    with transaction.atomic():
        _key_changes_serialise()
        try:
            key = SigningKey.objects.select_for_update().get(kid=kid)
        except SigningKey.DoesNotExist as e:
            raise SigningKeyError(f"No signing key with kid {kid!r}.") from e
        if key.state == State.REVOKED:
            return key
        was_current = key.state == State.CURRENT
        was_next = key.state == State.NEXT
        key.state = State.REVOKED
        key.revoked_at = now
        key.retired_at = key.retired_at or now
        key.save(update_fields=["state", "revoked_at", "retired_at", "updated_at"])
        if was_current:
            successor = SigningKey.objects.select_for_update().filter(state=State.NEXT).first()
            algorithm = successor.algorithm if successor else _algorithm_check(key.algorithm)
            if successor is None:
                successor = _key_create(
                    private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.NEXT, now=now
                )
            successor.state = State.CURRENT
            successor.activated_at = now
            successor.save(update_fields=["state", "activated_at", "updated_at"])
            was_next = True
        if was_next:
            algorithm = _algorithm_check(key.algorithm)
            _key_create(
                private_key=keys.private_key_generate(algorithm), algorithm=algorithm, state=State.NEXT, now=now
            )
        auth_event_record(kind=AuthEvent.Kind.KEY_REVOKED, actor_id=actor_id, data={"kid": key.kid})
        _ring_changed()
    return key


def signing_key_import(*, pem: bytes, algorithm: str | None = None, actor_id: Any = None) -> SigningKey:
    """Import a PEM private key as the next key (an unpromoted next key is retired)."""
    try:
        private_key = keys.private_key_load_pem(pem)
        algorithm = algorithm or keys.algorithm_for_key(private_key)
        _algorithm_check(algorithm)
        keys.private_key_check(private_key, algorithm)
    except keys.KeyMaterialError as e:
        raise SigningKeyError(str(e)) from e
    now = clock.now()
    with transaction.atomic():
        _key_changes_serialise()
        # The replaced next key never signed anything, so retiring it loses nothing.
        SigningKey.objects.select_for_update().filter(state=State.NEXT).update(
            state=State.RETIRED, retired_at=now, updated_at=now
        )
        key = _key_create(private_key=private_key, algorithm=algorithm, state=State.NEXT, now=now)
        auth_event_record(kind=AuthEvent.Kind.KEY_IMPORTED, actor_id=actor_id, data={"kid": key.kid})
        _ring_changed()
    return key


def signing_keys_prune(*, dry_run: bool = False) -> list[SigningKey]:
    """Retire previous keys whose every token has expired; return them."""
    now = clock.now()
    # A key stops signing at retired_at; the longest-lived token it signed
    # expires one refresh lifetime later.
    cutoff = now - max(conf.refresh_lifetime(), conf.access_lifetime())
    with transaction.atomic():
        expired = list(SigningKey.objects.select_for_update().filter(state=State.PREVIOUS, retired_at__lte=cutoff))
        if not dry_run and expired:
            SigningKey.objects.filter(pk__in=[k.pk for k in expired]).update(state=State.RETIRED, updated_at=now)
            _ring_changed()
    return expired
