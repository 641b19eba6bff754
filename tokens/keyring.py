"""The in-process key ring: signing and verifying keys without a query per request.

Each worker holds the verifying keys (next, current, previous) and the
current private key in memory. Every `JWT_KEYRING_REFRESH_SECONDS` one
request re-reads the few key rows, so a rotation or revocation made by
another process or node is seen within that interval; parsing and
decryption happen only when a row actually changed. A token naming an
unknown `kid` triggers an early re-read (at most once a second), so a key
promoted elsewhere is trusted without waiting.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import conf, keys
from .exceptions import KeyRingUnavailable
from .models import SigningKey

UNKNOWN_KID_RELOAD_SECONDS = 1.0

logger = logging.getLogger("tokens")


@dataclass
class LoadedKey:
    kid: str
    algorithm: str
    state: str
    public_key: keys.PublicKey
    private_key_encrypted: str
    jwk: dict[str, str]
    updated_at: Any
    _private_key: keys.PrivateKey | None = field(default=None, repr=False)

    @property
    def private_key(self) -> keys.PrivateKey:
        if self._private_key is None:
            try:
                self._private_key = keys.private_key_decrypt(
                    self.private_key_encrypted, encryption_keys=conf.key_encryption_keys()
                )
            except keys.KeyMaterialError as e:
                # JWT_KEY_ENCRYPTION_KEYS lost the key this row was encrypted
                # under: an operator's error, answered 503 (not a 500) and logged.
                logger.error("signing key %s cannot be decrypted: %s", self.kid, e)
                raise KeyRingUnavailable() from e
        return self._private_key


class KeyRing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, LoadedKey] = {}
        self._current: LoadedKey | None = None
        self._jwks: bytes = b'{"keys":[]}'
        self._loaded_at: float | None = None
        self._unknown_kid_reload_at = 0.0

    # -- reading -------------------------------------------------------------
    def current(self) -> LoadedKey:
        """Return the key that signs new tokens, making the first one if there is none."""
        self._refresh_if_due()
        if self._current is None:
            from .signing_keys import signing_key_bootstrap

            signing_key_bootstrap()
            self.reload()
        if self._current is None:
            raise KeyRingUnavailable()
        return self._current

    def verifying(self, kid: str) -> LoadedKey | None:
        """Return the published key named `kid`, or None."""
        self._refresh_if_due()
        found = self._keys.get(kid)
        if found is None:
            now = time.monotonic()
            if now - self._unknown_kid_reload_at >= UNKNOWN_KID_RELOAD_SECONDS:
                self._unknown_kid_reload_at = now
                self.reload()
                found = self._keys.get(kid)
        return found

    def jwks_document(self) -> bytes:
        """Return the serialised JWKS of every published key."""
        self._refresh_if_due()
        if self._current is None and not self._keys:
            self.current()
        return self._jwks

    # -- loading -------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget the ring; the next use re-reads it (after a change in this process)."""
        self._loaded_at = None

    def reset(self) -> None:
        """Drop everything, parsed keys included (tests, new encryption keys)."""
        with self._lock:
            self._keys = {}
            self._current = None
            self._jwks = b'{"keys":[]}'
            self._loaded_at = None
            self._unknown_kid_reload_at = 0.0

    def _refresh_if_due(self) -> None:
        loaded_at = self._loaded_at
        if loaded_at is None or time.monotonic() - loaded_at >= conf.keyring_refresh_seconds():
            self.reload()

    def reload(self) -> None:
        """Re-read the published keys; parse only rows that changed."""
        rows = list(
            SigningKey.objects.filter(state__in=SigningKey.VERIFYING_STATES)
            .order_by("created_at")
            .values_list("kid", "algorithm", "state", "public_key", "private_key_encrypted", "updated_at")
        )
        with self._lock:
            loaded: dict[str, LoadedKey] = {}
            current = None
            for kid, algorithm, state, public_pem, private_enc, updated_at in rows:
                old = self._keys.get(kid)
                if old is not None and old.updated_at == updated_at and old.state == state:
                    entry = old
                else:
                    public = keys.public_key_load_pem(public_pem)
                    entry = LoadedKey(
                        kid=kid,
                        algorithm=algorithm,
                        state=state,
                        public_key=public,
                        private_key_encrypted=private_enc,
                        jwk=keys.public_jwk(public, kid=kid, algorithm=algorithm),
                        updated_at=updated_at,
                        _private_key=old._private_key if old is not None else None,
                    )
                loaded[kid] = entry
                if state == SigningKey.State.CURRENT:
                    current = entry
            order = {SigningKey.State.CURRENT: 0, SigningKey.State.NEXT: 1, SigningKey.State.PREVIOUS: 2}
            published = sorted(loaded.values(), key=lambda k: order.get(k.state, 3))  # type: ignore[call-overload]
            self._keys = loaded
            self._current = current
            self._jwks = json.dumps({"keys": [k.jwk for k in published]}, separators=(",", ":")).encode()
            self._loaded_at = time.monotonic()


keyring = KeyRing()
