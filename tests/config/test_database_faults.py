"""Database faults: 503 JSON with Retry-After wherever the failure happens, and recovery without a restart.

The in-process tests raise OperationalError at each place a request can meet
the database (a view, DRF authentication, a plain Django view, another
middleware). The PostgreSQL tests run a real gunicorn worker against the test
database through a TCP proxy that the test stops and starts, so the database
really becomes unreachable and comes back; and they kill the worker's
connections with pg_terminate_backend. The shared PostgreSQL server itself is
never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.test import Client

from conftest import PASSWORD, obtain

ROOT = Path(__file__).resolve().parents[2]
RETRY_AFTER = "5"


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


requires_postgresql = pytest.mark.skipif(not _on_postgresql(), reason="needs PostgreSQL (DATABASE_URL=postgres://...)")


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == RETRY_AFTER
    assert response.json()["code"] == "service_unavailable"


def _down(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("could not connect to server: Connection refused")


# -- in process: every place a request meets the database -----------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_failure_in_a_view(api_client, user, monkeypatch, settings, debug):
    settings.DEBUG = debug
    monkeypatch.setattr("django.contrib.auth.backends.ModelBackend.authenticate", _down)
    _assert_unavailable(obtain(api_client))


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_failure_in_bearer_authentication(auth_client, monkeypatch, settings, debug):
    settings.DEBUG = debug
    # The database goes away under the one query bearer authentication makes.
    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", _down)
    _assert_unavailable(auth_client.get("/api/me/"))


@pytest.mark.django_db
def test_failure_in_session_authentication(client, user, monkeypatch):
    client.force_login(user)
    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", _down)
    _assert_unavailable(client.get("/api/me/"))


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_failure_in_a_plain_django_view(client, monkeypatch, settings, debug):
    settings.DEBUG = debug
    monkeypatch.setattr("tokens.keyring.keyring.jwks_document", _down)
    _assert_unavailable(client.get("/.well-known/jwks.json"))


class DatabaseTouchingMiddleware:
    """Stands for any middleware that reads the database (a session store, a tenant lookup)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_failure_in_a_middleware(settings, debug):
    settings.DEBUG = debug
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.DatabaseTouchingMiddleware"]
    # The test client re-raises what Django logged as unhandled; a server answers with the response.
    client = Client(raise_request_exception=False)
    _assert_unavailable(client.get("/api/ping/"))
    _assert_unavailable(client.post("/api/token/", {}, content_type="application/json"))


def _assert_unavailable_page(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == RETRY_AFTER
    assert b"Back in a moment" in response.content


@pytest.mark.django_db
def test_a_page_that_meets_a_database_outage_says_try_again_with_503(client, user, monkeypatch):
    monkeypatch.setattr("django.contrib.auth.backends.ModelBackend.authenticate", _down)
    client.raise_request_exception = False
    response = client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    _assert_unavailable_page(response)


@pytest.mark.django_db
def test_the_admin_login_and_a_failing_middleware_get_the_503_page_too(settings, user):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.DatabaseTouchingMiddleware"]
    client = Client(raise_request_exception=False)
    _assert_unavailable_page(client.get("/admin/login/"))
    _assert_unavailable_page(client.get("/accounts/login/"))


@pytest.mark.django_db
def test_a_real_bug_on_a_page_is_still_a_500(client, monkeypatch):
    monkeypatch.setattr("django.contrib.auth.backends.ModelBackend.authenticate", lambda *a, **k: 1 / 0)
    client.raise_request_exception = False
    response = client.post("/accounts/login/", {"username": "a@example.com", "password": "x"})
    assert response.status_code == 500
    assert "Retry-After" not in response


@pytest.mark.django_db
def test_a_real_bug_is_still_a_json_500_not_a_503(monkeypatch):
    monkeypatch.setattr("tokens.keyring.keyring.jwks_document", lambda: 1 / 0)
    # The test client re-raises what Django reports as unhandled; a server answers with the response.
    with pytest.raises(ZeroDivisionError):
        Client().get("/.well-known/jwks.json")
    response = Client(raise_request_exception=False).get("/.well-known/jwks.json")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_is_down(client, monkeypatch):
    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", _down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Retry-After"] == RETRY_AFTER


# -- PostgreSQL: a real worker, a real outage ---------------------------------------------


class TcpProxy:
    """Forward a local port to PostgreSQL; `stop()` makes the database unreachable, `start()` brings it back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._running = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        if self._listener is not None:
            self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, dict, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, dict(error.headers), error.read()
        return status, headers, json.loads(raw) if raw else None

    def sign_in(self) -> tuple[int, dict, Any]:
        return self.request("POST", "/api/token/", {"email": "ada@example.com", "password": PASSWORD})


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    settings_dict = connection.settings_dict
    target = (settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432))
    tcp = TcpProxy(target)
    tcp.start()
    yield tcp
    tcp.stop()


@pytest.fixture
def server(transactional_db: None, proxy: TcpProxy) -> Iterator[Server]:
    """One gunicorn worker on a free port, using the test database through the proxy."""
    settings_dict = connection.settings_dict
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{user}{password}@127.0.0.1:{proxy.port}/{settings_dict['NAME']}",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "False",
        "CACHE_URL": "locmemcache://",
        "LOGIN_RATE": "1000/min",
        "DJANGO_READ_DOT_ENV": "0",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_TIME_COST": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "config.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    live = Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if live.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _unavailable(answer: tuple[int, dict, Any]) -> bool:
    status, headers, body = answer
    return status == 503 and headers.get("Retry-After") == RETRY_AFTER and body["code"] == "service_unavailable"


@pytest.mark.postgres
@requires_postgresql
@pytest.mark.usefixtures("user")
def test_an_unreachable_database_gives_503_and_recovery_needs_no_restart(server, proxy):
    status, _, pair = server.sign_in()
    assert status == 200, pair
    assert server.request("GET", "/api/me/", token=pair["access"])[0] == 200

    proxy.stop()  # PostgreSQL unreachable: the worker's open connection dies, new ones are refused

    assert _unavailable(server.sign_in())
    assert _unavailable(server.request("GET", "/api/me/", token=pair["access"]))  # fails in authentication
    assert _unavailable(server.request("POST", "/api/token/refresh/", {"refresh": pair["refresh"]}))
    ready = server.request("GET", "/readyz")
    assert ready[0] == 503 and ready[2]["checks"]["database"] == "unavailable"
    assert server.request("GET", "/api/ping/")[0] == 200  # what needs no database still works
    assert server.request("GET", "/healthz")[0] == 200

    proxy.start()  # the database is back on the same address

    status, _, again = server.sign_in()
    assert status == 200, again
    assert server.request("GET", "/api/me/", token=again["access"])[0] == 200
    assert server.request("POST", "/api/token/refresh/", {"refresh": pair["refresh"]})[0] == 200
    assert server.request("GET", "/readyz")[0] == 200


@pytest.mark.postgres
@requires_postgresql
@pytest.mark.usefixtures("user")
def test_terminated_connections_are_replaced_on_the_next_request(server):
    status, _, pair = server.sign_in()
    assert status == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1  # the worker's persistent connection

    # With CONN_HEALTH_CHECKS the worker notices the dead connection before
    # using it; without them the first request that meets it fails with a 503
    # (never a 500) and Django replaces the connection at the end of it.
    # Either way the worker recovers by itself, within one request.
    first = server.request("GET", "/api/me/", token=pair["access"])
    assert first[0] == 200 or _unavailable(first)
    assert server.request("GET", "/api/me/", token=pair["access"])[0] == 200
    assert server.sign_in()[0] == 200
    assert server.request("GET", "/readyz")[0] == 200
