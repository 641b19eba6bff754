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
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveProcess, free_port, fresh_database, manage, process_start, server_env

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


@pytest.fixture(scope="session")
def live_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database for the server process alone, dropped afterwards."""
    with fresh_database(tmp_path_factory.mktemp("live-db"), suffix="_browser") as url:
        yield url


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


@pytest.fixture(scope="session")
def live_server_process(
    live_database_url: str, webapp_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveProcess]:
    """Migrate the server's own database and run the auth server as a real process."""
    reason = _chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    port = free_port()
    env = server_env(
        DATABASE_URL=live_database_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_COOKIES="False",  # plain HTTP on the loopback
        CORS_ALLOWED_ORIGINS=webapp_origin,
        CSRF_TRUSTED_ORIGINS=webapp_origin,
        JWT_ISSUER=f"http://127.0.0.1:{port}",
        LOGIN_RATE="1000/min",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )
    manage("migrate", "--no-input", "-v", "0", env=env, timeout=180)
    command = [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"]
    server = process_start(
        "auth", command, env=env, port=port, log_dir=tmp_path_factory.mktemp("live-server"), ready_path="/healthz"
    )
    try:
        yield server
    finally:
        server.stop()


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
