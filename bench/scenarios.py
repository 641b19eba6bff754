"""The scenarios: what each virtual client sends, and what it keeps from the answers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .client import Client
from .load import Request, VirtualClient

PASSWORD = "bench password, not a secret"
JSON = {"Content-Type": "application/json"}


def user_email(i: int, *, hasher: str) -> str:
    """The email of benchmark user `i` whose password hash uses `hasher`."""
    return f"bench-{hasher}-{i}@example.com"


async def sign_in(client: Client, email: str) -> dict[str, str]:
    """Sign in through the API and return the token pair."""
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    status, content = await client.request("POST", "/api/token/", headers=JSON, body=body)
    if status != 200:
        raise RuntimeError(f"sign-in as {email} failed: {status} {content[:200]!r}")
    pair: dict[str, str] = json.loads(content)
    return pair


class Get(VirtualClient):
    def __init__(self, path: str, headers: dict[str, str] | None = None) -> None:
        self.request: Request = ("GET", path, headers or {}, b"")

    def next_request(self) -> Request:
        return self.request


class Me(Get):
    def __init__(self, access: str) -> None:
        super().__init__("/api/me/", {"Authorization": f"Bearer {access}"})


class Refresh(VirtualClient):
    """Always presents the newest refresh token it received, like a well-behaved app."""

    def __init__(self, email: str, refresh: str) -> None:
        self.email = email
        self.refresh = refresh

    def next_request(self) -> Request:
        return ("POST", "/api/token/refresh/", JSON, json.dumps({"refresh": self.refresh}).encode())

    def on_response(self, status: int, body: bytes) -> bool:
        if status != 200:
            return False
        self.refresh = json.loads(body)["refresh"]
        return True

    async def recover(self, client: Client) -> None:
        # The family may have been revoked: start a new login session.
        self.refresh = (await sign_in(client, self.email))["refresh"]


class Obtain(VirtualClient):
    """Signs in again and again, cycling through its own users."""

    def __init__(self, emails: list[str]) -> None:
        self.bodies = [json.dumps({"email": e, "password": PASSWORD}).encode() for e in emails]
        self.i = 0

    def next_request(self) -> Request:
        self.i = (self.i + 1) % len(self.bodies)
        return ("POST", "/api/token/", JSON, self.bodies[self.i])


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    setup: Callable[[Client, int, int], Awaitable[list[VirtualClient]]]
    # Sign-in scenarios run at their own (low) concurrency.
    fixed_concurrency: int | None = None
    # Which users' password hashes, hence which server, the scenario needs.
    hasher: str = "argon2"


async def _hello(client: Client, n: int, users: int) -> list[VirtualClient]:
    return [Get("/api/ping/") for _ in range(n)]


async def _jwks(client: Client, n: int, users: int) -> list[VirtualClient]:
    return [Get("/.well-known/jwks.json") for _ in range(n)]


async def _me(client: Client, n: int, users: int) -> list[VirtualClient]:
    out: list[VirtualClient] = []
    for i in range(n):
        pair = await sign_in(client, user_email(i % users, hasher="argon2"))
        out.append(Me(pair["access"]))
    return out


async def _refresh(client: Client, n: int, users: int) -> list[VirtualClient]:
    out: list[VirtualClient] = []
    for i in range(n):
        email = user_email(i % users, hasher="argon2")
        out.append(Refresh(email, (await sign_in(client, email))["refresh"]))
    return out


def _obtain(hasher: str) -> Callable[[Client, int, int], Awaitable[list[VirtualClient]]]:
    async def setup(client: Client, n: int, users: int) -> list[VirtualClient]:
        # Client k signs in as users k, k+n, k+2n, ...: no two clients share an account.
        return [
            Obtain([user_email(i, hasher=hasher) for i in range(k, users, n)] or [user_email(k, hasher=hasher)])
            for k in range(n)
        ]

    return setup


OBTAIN_CONCURRENCY = 4

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("hello", "GET /api/ping/: DRF, no authentication (the ceiling)", _hello),
        Scenario("me", "GET /api/me/ with a bearer access token", _me),
        Scenario("refresh", "POST /api/token/refresh/, newest token each time, one login session per client", _refresh),
        Scenario("obtain", "POST /api/token/ (Argon2id hashes)", _obtain("argon2"), OBTAIN_CONCURRENCY, "argon2"),
        Scenario(
            "obtain_pbkdf2",
            "POST /api/token/ (Django's default PBKDF2 hashes, PASSWORD_HASHER=pbkdf2)",
            _obtain("pbkdf2"),
            OBTAIN_CONCURRENCY,
            "pbkdf2",
        ),
        Scenario("jwks", "GET /.well-known/jwks.json", _jwks),
    ]
}
DEFAULT_SCENARIOS = ["hello", "me", "refresh", "obtain", "obtain_pbkdf2", "jwks"]
