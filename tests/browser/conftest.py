"""Real-browser fixtures: the auth server as a real process, a second origin, headless Chromium.

The auth server runs `manage.py runserver --noreload` on a free port, on a
database of its own (a migrated temporary SQLite file, or a separate
PostgreSQL database when the suite runs on PostgreSQL). The "web app" is a
static page on a second free port, which is the one origin the server
allows through CORS. Chromium is Debian's, driven by Playwright; where it is
missing, every test here skips and says why.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBAPP_DIR = Path(__file__).resolve().parent / "webapp"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_SECONDS = 60


def _chromium_missing_reason() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`); browser tests skipped."
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "The Python package `playwright` is not installed; browser tests skipped."
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the database the server process uses ---------------------------------------------


@pytest.fixture(scope="session")
def live_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database for the server process alone, dropped afterwards."""
    suite_url = os.environ.get("DATABASE_URL", "")
    if not suite_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        path = tmp_path_factory.mktemp("live-db") / "db.sqlite3"
        yield f"sqlite:///{path}"
        return

    import environ
    import psycopg

    config = environ.Env.db_url_config(suite_url)
    name = f"{config['NAME']}_browser_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 5432),
        user=config.get("USER") or "postgres",
        password=config.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield suite_url.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the second origin: a static web app ---------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def webapp_origin() -> Iterator[str]:
    """Serve tests/browser/webapp on a free port of its own: the web app's origin."""
    handler = functools.partial(_QuietHandler, directory=str(WEBAPP_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the auth server -------------------------------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]
    log: Path  # the server's output, console emails included


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the auth server exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the auth server did not answer within {SERVER_START_SECONDS}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def live_server_process(
    live_database_url: str, webapp_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Migrate the server's own database and run the auth server as a real process."""
    reason = _chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_READ_DOT_ENV": "0",
        "DATABASE_URL": live_database_url,
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "False",  # plain HTTP on the loopback
        "CORS_ALLOWED_ORIGINS": webapp_origin,
        "CSRF_TRUSTED_ORIGINS": webapp_origin,
        "JWT_ISSUER": url,
        "LOGIN_RATE": "1000/min",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_TIME_COST": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("SECRET_KEY", "browser-test-secret-key-not-for-production")
    env.setdefault("JWT_KEY_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE=")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180)
    log = tmp_path_factory.mktemp("live-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*manage, "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log)
        yield LiveServer(url=url, env=env, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (Playwright's loop stops with the module)."""
    reason = _chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Any]:
    """Make fresh browser contexts (separate cookie jars: separate devices); close them after."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path | None:
    """Where to save page screenshots, if BROWSER_SCREENSHOTS names a folder."""
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def unique_email() -> Any:
    """Make an address no other test uses: the server's database lives for the whole run."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"

    return make
