"""Two nodes, one PostgreSQL database, one Redis: they behave as one server.

Each node is a gunicorn process started with the project's gunicorn.conf.py
on its own free port. What one node (or an operator's command) changes, the
other must honour: keys within the key-ring refresh interval, revoked login
sessions at once, sign-in attempts counted together.

The nodes' database is the run's own database name plus `_nodes`, and each
test connects from a loopback address of its own with accounts of its own,
so that test runs sharing this machine's PostgreSQL and Redis do not meet.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import pytest

from conftest import PASSWORD
from tests.live import LiveProcess, auth_server_start, loopback_address, manage, server_env, wait_for

REDIS_URL = "redis://127.0.0.1:6379/15"
LOGIN_RATE = 6  # per minute; small so that the throttling test is quick
# The contract: a key rotated anywhere is used everywhere within this long.
KEY_PROPAGATION_SECONDS = 10


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if urlsplit(url).scheme in {"postgres", "postgresql", "pgsql"} else None


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        _postgres_url() is None,
        reason="several nodes need a shared PostgreSQL database: run with DATABASE_URL=postgres://...",
    ),
]


def _database_url(name: str) -> str:
    base = urlsplit(_postgres_url() or "")
    return urlunsplit(base._replace(path=f"/{name}"))


def _nodes_database() -> str:
    return urlsplit(_postgres_url() or "").path.lstrip("/") + "_nodes"


def _database_drop(*, create: bool = False) -> None:
    import psycopg

    name = _nodes_database()
    with psycopg.connect(_database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            connection.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def nodes_env() -> Iterator[dict[str, str]]:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.skip(f"several nodes need a shared Redis at {REDIS_URL}: {e}")
    _database_drop(create=True)
    env = server_env(
        DATABASE_URL=_database_url(_nodes_database()),
        CACHE_URL=REDIS_URL,
        LOGIN_RATE=f"{LOGIN_RATE}/min",
        # The default interval, on purpose: the 10 s promise is about it.
        JWT_KEYRING_REFRESH_SECONDS="5",
    )
    manage("migrate", "--no-input", env=env)
    yield env
    _database_drop()


@pytest.fixture(scope="module")
def nodes(nodes_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveProcess, ...]]:
    log_dir = tmp_path_factory.mktemp("nodes")
    started: list[LiveProcess] = []
    try:
        for name in ("node-a", "node-b"):
            started.append(auth_server_start(name, env=nodes_env, log_dir=log_dir))
        yield tuple(started)
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def source() -> str:
    """This test's client address: its own per-address sign-in counter in the shared Redis."""
    return loopback_address()


@pytest.fixture
def account(nodes: tuple[LiveProcess, ...], source: str) -> str:
    """A fresh account per test: its own per-account sign-in counter."""
    email = f"nodes-{uuid.uuid4().hex[:10]}@example.com"
    with nodes[0].client(source_address=source) as client:
        response = client.post("/api/accounts/signup/", json={"email": email, "password": PASSWORD, "name": "Nodes"})
    assert response.status_code == 201, response.text
    return email


def _client(node: LiveProcess, source: str, access: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {access}"} if access else {}
    return node.client(source_address=source, headers=headers)


def _sign_in(node: LiveProcess, source: str, email: str) -> dict[str, Any]:
    with _client(node, source) as client:
        response = client.post("/api/token/", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, (response.text, node.log())
    return response.json()


def _me(node: LiveProcess, source: str, access: str) -> Any:
    with _client(node, source, access) as client:
        return client.get("/api/me/")


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_key_rotated_by_a_separate_process_signs_and_is_published_on_both_nodes(
    nodes: tuple[LiveProcess, ...], nodes_env: dict[str, str], source: str, account: str
) -> None:
    pairs = {node.name: _sign_in(node, source, account) for node in nodes}  # both key rings are warm now
    old_kid = _kid(pairs["node-a"]["access"])
    assert _kid(pairs["node-b"]["access"]) == old_kid

    rotation = json.loads(manage("rotate_signing_key", "--force", "--json", env=nodes_env).stdout)
    new_current, new_next = rotation["current"]["kid"], rotation["next"]["kid"]
    assert new_current != old_kid
    assert rotation["previous"]["kid"] == old_kid

    for node in nodes:
        refresh = {"token": pairs[node.name]["refresh"]}

        def rotated(node: LiveProcess = node, refresh: dict[str, str] = refresh) -> bool:
            with _client(node, source) as client:
                response = client.post("/api/token/refresh/", json={"refresh": refresh["token"]})
                assert response.status_code == 200, response.text
                refresh["token"] = response.json()["refresh"]
                published = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
            return _kid(response.json()["access"]) == new_current and {new_current, new_next, old_kid} <= published

        # Polled from the end of the command, so the bound is conservative.
        wait_for(rotated, timeout=KEY_PROPAGATION_SECONDS, interval=0.25, what=f"{node.name} signs with the new key")

    # Tokens of the old key (now `previous`) still work everywhere: nobody is logged out.
    for node in nodes:
        for pair in pairs.values():
            assert _me(node, source, pair["access"]).status_code == 200


def test_a_session_signed_out_through_one_node_is_refused_by_the_other_at_once(
    nodes: tuple[LiveProcess, ...], source: str, account: str
) -> None:
    a, b = nodes
    pair = _sign_in(a, source, account)
    assert _me(b, source, pair["access"]).status_code == 200  # b has seen and accepted it

    with _client(a, source) as client:
        assert client.post("/api/token/logout/", json={"refresh": pair["refresh"]}).status_code == 204

    refused = _me(b, source, pair["access"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    with _client(b, source) as client:
        assert client.post("/api/token/refresh/", json={"refresh": pair["refresh"]}).status_code == 401


def test_a_device_signed_out_from_another_node_is_refused_at_once(
    nodes: tuple[LiveProcess, ...], source: str, account: str
) -> None:
    a, b = nodes
    phone, laptop = _sign_in(a, source, account), _sign_in(b, source, account)
    laptop_sid = jwt.decode(laptop["access"], options={"verify_signature": False})["sid"]
    assert _me(a, source, laptop["access"]).status_code == 200

    with _client(b, source, phone["access"]) as client:
        assert client.delete(f"/api/sessions/{laptop_sid}/").status_code == 204

    assert _me(a, source, laptop["access"]).status_code == 401
    assert _me(b, source, laptop["access"]).status_code == 401
    assert _me(a, source, phone["access"]).status_code == 200


def test_signing_out_everywhere_through_one_node_ends_sessions_made_on_both(
    nodes: tuple[LiveProcess, ...], source: str, account: str
) -> None:
    a, b = nodes
    on_a, on_b = _sign_in(a, source, account), _sign_in(b, source, account)
    with _client(b, source, on_b["access"]) as client:
        response = client.post("/api/token/logout/all/")
    assert response.status_code == 200
    assert response.json()["revoked"] == 2
    for node in nodes:
        assert _me(node, source, on_a["access"]).status_code == 401
        assert _me(node, source, on_b["access"]).status_code == 401


def test_sign_in_attempts_are_counted_across_both_nodes(nodes: tuple[LiveProcess, ...], source: str) -> None:
    """Alternating nodes, each sees half the attempts; only a shared count refuses the next one."""
    a, b = nodes
    email = f"throttled-{uuid.uuid4().hex[:10]}@example.com"
    statuses = []
    for i in range(LOGIN_RATE):
        with _client((a, b)[i % 2], source) as client:
            statuses.append(client.post("/api/token/", json={"email": email, "password": "wrong password"}).status_code)
    assert statuses == [401] * LOGIN_RATE

    for node in nodes:
        with _client(node, source) as client:
            response = client.post("/api/token/", json={"email": email, "password": "wrong password"})
        assert response.status_code == 429, (node.name, response.text)
        assert response.json()["code"] == "throttled"
        assert re.fullmatch(r"\d+", response.headers["Retry-After"])
        assert int(response.headers["Retry-After"]) > 0


def test_each_test_signs_in_from_its_own_address(nodes: tuple[LiveProcess, ...], source: str, account: str) -> None:
    """The isolation above rests on this: the server sees the loopback address the test picked."""
    pair = _sign_in(nodes[0], source, account)
    with _client(nodes[1], source, pair["access"]) as client:
        sessions = client.get("/api/sessions/").json()
    assert [s["ip"] for s in sessions] == [source]
