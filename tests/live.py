"""A real server process for live tests: `with running_server() as server: ...`.

The server is `manage.py runserver --noreload` on a free port, over a fresh
database that the helper migrates first: a temporary SQLite file, or, when
the test run itself uses PostgreSQL, a database named after the run's own
with a `_live` suffix, made and dropped here. It gets the environment of the
test run (plus cheap password hashing and a generous sign-in rate, so that
tests can sign in often). `server.manage(...)` runs a management command in
another process against the same database, as an operator would. The server
is always stopped, even when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    """Return a port the kernel just handed out for 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The test run's environment, pointed at `database_url`."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_READ_DOT_ENV": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_TIME_COST": "1",
        "LOGIN_RATE": "100000/min",
    }
    env.update(overrides)
    return env


@dataclass
class LiveServer:
    base_url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `manage.py <args>` in a separate process against the server's database."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-5000:]


def _wait_until_up(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer within {STARTUP_TIMEOUT_SECONDS} s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _postgres_admin(url: str, statement: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(name)))


@contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """Yield the URL of an empty database for a live server, and remove it afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{directory / 'db.sqlite3'}"
        return
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}_live"
    _postgres_admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
    _postgres_admin(url, "CREATE DATABASE {}", name)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _postgres_admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@contextmanager
def running_server(**env_overrides: str) -> Iterator[LiveServer]:
    """Migrate a fresh database, start a server on a free port, yield it, stop it."""
    with tempfile.TemporaryDirectory(prefix="live-server-") as tmp, fresh_database(Path(tmp)) as database_url:
        directory = Path(tmp)
        env = server_env(database_url, **env_overrides)
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrated.stderr[-5000:]}")
        port = free_port()
        log_path = directory / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            server = LiveServer(base_url=f"http://127.0.0.1:{port}", env=env, log_path=log_path, process=process)
            try:
                _wait_until_up(server)
                yield server
            finally:
                _stop(process)
