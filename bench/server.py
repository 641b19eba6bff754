"""A throw-away PostgreSQL database and a gunicorn server on it, started and stopped by the runner."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

PROJECT = Path(__file__).resolve().parent.parent


def database_url(base: str, name: str) -> str:
    """Return `base` (a postgres:// URL) pointing at database `name`."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def database_recreate(url: str) -> None:
    """Drop and create the database `url` names (it must be a benchmark database)."""
    name = urlsplit(url).path.lstrip("/")
    admin_url = database_url(url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_analyze(url: str) -> None:
    """Refresh the planner's statistics after a bulk load."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def server_env(database: str, *, hasher: str = "argon2", extra: list[str] | None = None) -> dict[str, str]:
    """The environment the server and the setup commands run with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "JWT_", "PASSWORD_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_READ_DOT_ENV": "0",
            "DEBUG": "False",
            "SECRET_KEY": _SECRET_KEY,
            "JWT_KEY_ENCRYPTION_KEYS": _FERNET_KEY,
            "DATABASE_URL": database,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Sign-in throttling must not shape the sign-in measurement.
            "LOGIN_RATE": "1000000/s",
            "PASSWORD_HASHER": hasher,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for item in extra or []:
        name, _, value = item.partition("=")
        env[name] = value
    return env


# Fresh secrets per run; the database is thrown away with them.
_SECRET_KEY = secrets.token_urlsafe(50)
_FERNET_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def manage(env: dict[str, str], *args: str) -> None:
    """Run a management command of the project; fail loudly."""
    subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=env, check=True)


def users_create(env: dict[str, str], *, users: int) -> None:
    subprocess.run([sys.executable, "-m", "bench.seed", "--users", str(users)], cwd=PROJECT, env=env, check=True)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    host: str = "127.0.0.1"
    workers: list[int] = field(default_factory=list)

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the master)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return sorted(int(c) for c in children)
        except OSError:
            found = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:
                    found.append(int(stat.parent.name))
            return sorted(found)


def rss_kib(pid: int) -> int:
    """Resident set size of `pid`, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextmanager
def server_running(env: dict[str, str], *, workers: int = 2, ready_timeout: float = 60.0) -> Iterator[Server]:
    """Start gunicorn on a free port (a socket we bind and hand over), wait until ready, stop it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = listener.getsockname()[1]
    log = Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:bench.gunicorn_conf",
                "--workers",
                str(workers),
                "--bind",
                f"fd://{listener.fileno()}",
                "config.wsgi",
            ],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    listener.close()
    server = Server(process=process, port=port, log=log)
    try:
        _wait_ready(server, ready_timeout, workers)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: Server, timeout: float, workers: int) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{server.host}:{server.port}/readyz"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}; see {server.log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and len(server.worker_pids()) >= workers:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not become ready in {timeout:.0f}s; see {server.log}")
