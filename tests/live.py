"""Real server processes for the tests marked `live`: free ports, fresh databases, readiness, logs, clean stops.

`auth_server_start` runs the auth server under gunicorn with the project's
gunicorn.conf.py; `running_server()` migrates a fresh database and runs
`manage.py runserver --noreload` on it. Either way the process gets the test
run's environment (cheap password hashing, the test secrets), is polled until
it answers, and is always stopped.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# The secrets of the test run (as in the Makefile), so that a server started
# from a bare shell behaves like the suite.
TEST_SECRETS = {
    "SECRET_KEY": "test-secret-key-not-for-production",
    "JWT_KEY_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE=",
}


def free_port() -> int:
    """Ask the kernel for a port nobody is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(**overrides: str) -> dict[str, str]:
    """The environment of the test run, made fit for a server process, plus `overrides`."""
    env = {**os.environ}
    for name, value in TEST_SECRETS.items():
        env.setdefault(name, value)
    env.update(
        {
            "DJANGO_READ_DOT_ENV": "0",
            "DEBUG": "False",
            # Cheap password hashing: these tests are about tokens and nodes.
            "ARGON2_MEMORY_COST_KIB": "1024",
            "ARGON2_TIME_COST": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(overrides)
    return env


def loopback_address() -> str:
    """A random address in 127.0.0.0/8: on Linux every one of them reaches a server bound to 127.0.0.1.

    Servers see it as the client's REMOTE_ADDR, so a test gets sign-in
    counters of its own even when other test runs share the same Redis.
    """
    rng = random.SystemRandom()
    return f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a management command as its own process; fail the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def wait_for(check: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(interval)


@dataclass
class LiveProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.url

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `manage.py <args>` in another process against this server's database; the caller checks it."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def client(self, *, source_address: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this process; `source_address` picks the loopback address it connects from."""
        if source_address is not None:
            kwargs["transport"] = httpx.HTTPTransport(local_address=source_address)
        return httpx.Client(base_url=self.url, timeout=15, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def process_start(
    name: str, command: list[str], *, env: dict[str, str], port: int, log_dir: Path, ready_path: str
) -> LiveProcess:
    """Start `command`, which serves on `port`, and wait until `ready_path` answers 200."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    live = LiveProcess(name=name, url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, env=env)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{live.log()}")
        try:
            return httpx.get(live.url + ready_path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=60, what=f"{name} ready")
    except BaseException:
        live.stop()
        raise
    return live


def auth_server_start(name: str, *, env: dict[str, str], log_dir: Path) -> LiveProcess:
    """Start the auth server under gunicorn with the project's gunicorn.conf.py on a free port."""
    port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        # One worker per node: the machines running the suite are small.
        "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "1"),
        "GUNICORN_GRACEFUL_TIMEOUT": "3",
        "GUNICORN_ACCESS_LOG": str(log_dir / f"{name}.access.log"),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "config.wsgi"]
    return process_start(name, command, env=env, port=port, log_dir=log_dir, ready_path="/readyz")


# The runserver flavour, over a database of its own ---------------------------------

LiveServer = LiveProcess


def _postgres_admin(url: str, statement: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(name)))


@contextmanager
def fresh_database(directory: Path, *, suffix: str = "_live") -> Iterator[str]:
    """Yield the URL of an empty database for a live server, and remove it afterwards.

    A SQLite file in `directory`, or, when the test run uses PostgreSQL, a
    database named after the run's own plus `suffix`.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{directory / 'db.sqlite3'}"
        return
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}{suffix}"
    _postgres_admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
    _postgres_admin(url, "CREATE DATABASE {}", name)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _postgres_admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def runserver_start(name: str, *, env: dict[str, str], log_dir: Path) -> LiveProcess:
    """Migrate `env`'s database and run `manage.py runserver --noreload` on a free port."""
    manage("migrate", "--noinput", "-v", "0", env=env, timeout=300)
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    return process_start(name, command, env=env, port=port, log_dir=log_dir, ready_path="/healthz")


@contextmanager
def running_server(**env_overrides: str) -> Iterator[LiveProcess]:
    """Migrate a fresh database, start a server on a free port, yield it, stop it."""
    with tempfile.TemporaryDirectory(prefix="live-server-") as tmp, fresh_database(Path(tmp)) as database_url:
        env = server_env(DATABASE_URL=database_url, LOGIN_RATE="100000/min", **env_overrides)
        server = runserver_start("server", env=env, log_dir=Path(tmp))
        try:
            yield server
        finally:
            server.stop()
