"""Rotation and revocation by operator commands while a real server answers requests.

The commands run in their own processes, as on a production machine, so the
server learns of each change only through its key-ring refresh
(JWT_KEYRING_REFRESH_SECONDS, left at its default here). The issue's promise:
every worker sees a change within 10 seconds, and no request fails meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.live import LiveServer, running_server

pytestmark = pytest.mark.live

VISIBLE_WITHIN_SECONDS = 10.0
EMAIL = "live@example.com"
PASSWORD = "a long password for the live test"


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _obtain(client: httpx.Client) -> dict[str, str]:
    response = client.post("/api/token/", json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _poll(condition: Callable[[], bool]) -> float:
    """Return how many seconds `condition` took to hold; fail after VISIBLE_WITHIN_SECONDS."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > VISIBLE_WITHIN_SECONDS:
            pytest.fail(f"not seen within {VISIBLE_WITHIN_SECONDS} s")
        time.sleep(0.2)


class Traffic(threading.Thread):
    """Steady requests with one token: /api/me/, verify and the JWKS, recording every answer."""

    def __init__(self, server: LiveServer, access: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.access = access
        self.answers: list[tuple[str, Any]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.server.client() as client:
            while not self.stopped.is_set():
                for path, send in (
                    ("/api/me/", lambda: client.get("/api/me/", headers=_bearer(self.access))),
                    ("/api/token/verify/", lambda: client.post("/api/token/verify/", json={"token": self.access})),
                    ("/.well-known/jwks.json", lambda: client.get("/.well-known/jwks.json")),
                ):
                    try:
                        self.answers.append((path, send().status_code))
                    except httpx.HTTPError as e:
                        self.answers.append((path, repr(e)))
                time.sleep(0.02)

    def wait_for(self, count: int) -> None:
        _poll(lambda: len(self.answers) >= count)

    def failures(self) -> list[tuple[str, Any]]:
        return [answer for answer in self.answers if answer[1] != 200]


def test_rotation_and_revocation_while_the_server_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_KEYRING_REFRESH_SECONDS", raising=False)
    with running_server() as server, server.client() as client:
        signup = client.post("/api/accounts/signup/", json={"email": EMAIL, "password": PASSWORD, "name": "Live"})
        assert signup.status_code == 201, signup.text
        first = _obtain(client)
        old_current = _kid(first["access"])
        traffic = Traffic(server, first["access"])
        traffic.start()
        try:
            traffic.wait_for(30)

            # Rotation, by another process.
            rotated = server.manage("rotate_signing_key", "--force", "--json")
            assert rotated.returncode == 0, rotated.stderr
            result = json.loads(rotated.stdout)
            new_current, new_next = result["current"]["kid"], result["next"]["kid"]
            assert result["previous"]["kid"] == old_current

            def new_tokens_carry_the_new_kid() -> bool:
                pair = _obtain(client)
                assert client.get("/api/me/", headers=_bearer(pair["access"])).status_code == 200
                return _kid(pair["access"]) == new_current

            rotation_seen = _poll(new_tokens_carry_the_new_kid)

            def jwks_shows_the_new_next() -> bool:
                kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
                return kids == {old_current, new_current, new_next}

            _poll(jwks_shows_the_new_next)
            # A token signed by the old current (now previous) keeps working.
            assert client.get("/api/me/", headers=_bearer(first["access"])).status_code == 200
            refreshed = client.post("/api/token/refresh/", json={"refresh": first["refresh"]})
            assert refreshed.status_code == 200, refreshed.text
            assert _kid(refreshed.json()["access"]) == new_current

            # Revocation of the current key, by another process.
            second = _obtain(client)
            assert _kid(second["access"]) == new_current
            revoked = server.manage("revoke_signing_key", new_current)
            assert revoked.returncode == 0, revoked.stderr

            def revoked_token_is_refused() -> bool:
                response = client.get("/api/me/", headers=_bearer(second["access"]))
                assert response.status_code in (200, 401)
                return response.status_code == 401

            revocation_seen = _poll(revoked_token_is_refused)
            assert client.post("/api/token/verify/", json={"token": second["access"]}).status_code == 401
            assert client.post("/api/token/refresh/", json={"refresh": second["refresh"]}).status_code == 401
            takeover_seen = _poll(lambda: _kid(_obtain(client)["access"]) == new_next)

            traffic.wait_for(len(traffic.answers) + 30)
        finally:
            traffic.stopped.set()
            traffic.join(timeout=30)

        assert traffic.failures() == [], server.log()
        assert len(traffic.answers) >= 60
        assert client.get("/api/me/", headers=_bearer(first["access"])).status_code == 200
        assert "Traceback" not in server.log()
        print(
            f"\nlive: {len(traffic.answers)} requests, none failed; rotation seen after {rotation_seen:.1f} s, "
            f"revocation after {revocation_seen:.1f} s, takeover by the next key after {takeover_seen:.1f} s"
        )
