"""Access and refresh tokens: simplejwt's Token API over the key-ring backend."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import datetime_from_epoch, datetime_to_epoch

from . import clock, conf
from .backends import KeyRingBackend, backend


class KeyRingToken(Token):
    """A token signed by the key ring; constructing one from a string verifies it fully."""

    token_type: str

    def __init__(self, token: Any = None, verify: bool = True, *, now: datetime | None = None) -> None:
        # simplejwt's constructor reads the wall clock and its own settings;
        # ours uses the replaceable clock and always verifies a given token.
        self.token = token
        self.current_time = now or clock.now()
        if token is not None:
            self.payload = self.token_backend.decode(token, token_type=self.token_type, now=self.current_time)
        else:
            self.payload = {"token_type": self.token_type}
            self.set_iat(at_time=self.current_time)
            self.set_exp(from_time=self.current_time, lifetime=self.get_lifetime())
            self.payload["jti"] = str(uuid.uuid4())
            self.payload["iss"] = conf.issuer()
            audience = conf.audience()
            if audience:
                self.payload["aud"] = audience

    @classmethod
    def get_lifetime(cls) -> timedelta:
        raise NotImplementedError

    @property
    def token_backend(self) -> KeyRingBackend:  # type: ignore[override]
        return backend

    @property
    def expires_at(self) -> datetime:
        return datetime_from_epoch(self.payload["exp"])

    @property
    def jti(self) -> str:
        return str(self.payload["jti"])

    @property
    def sid(self) -> str:
        return str(self.payload["sid"])

    def set_exp(self, claim: str = "exp", from_time: datetime | None = None, lifetime: timedelta | None = None) -> None:
        start = from_time or self.current_time
        self.payload[claim] = datetime_to_epoch(start + (lifetime or self.get_lifetime()))


class AccessToken(KeyRingToken):
    token_type = "access"

    @classmethod
    def get_lifetime(cls) -> timedelta:
        return conf.access_lifetime()


class RefreshToken(KeyRingToken):
    token_type = "refresh"

    @classmethod
    def get_lifetime(cls) -> timedelta:
        return conf.refresh_lifetime()
