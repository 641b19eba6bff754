"""The Next.js client code of docs/clients.md, run verbatim in headless Chromium against gunicorn.

The page (tests/examples/webclient) is served from a second origin, as a web
app would be; it loads the code block `lib/api.js` copied from the guide and
the real axios package (installed from npm into a temporary folder). The
browser keeps the refresh cookie, localStorage and the Web Locks API for
real, so what is shown here is what a web app gets: many parallel calls
that find no usable access token cause exactly one refresh, two tabs take
turns instead of tripping reuse detection, and a revoked session is not
refreshed at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import PASSWORD
from tests.live import BASE_DIR, LiveProcess, auth_server_start, free_port, manage, server_env

pytestmark = [pytest.mark.browser, pytest.mark.live]

AXIOS_VERSION = "1.21.1"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
HARNESS = Path(__file__).resolve().parent / "webclient" / "index.html"
PARALLEL_CALLS = "n => Promise.all(Array.from({length: n}, () => client.api.get('/api/me/').then(r => r.status, e => e.response ? e.response.status : String(e))))"  # noqa: E501


def _client_code() -> str:
    """The `lib/api.js` block of the client guide, exactly as a reader would copy it."""
    text = (BASE_DIR / "docs" / "clients.md").read_text()
    match = re.search(r"```js\n(// lib/api\.js.*?)```", text, re.DOTALL)
    assert match, "docs/clients.md has no ```js block starting with // lib/api.js"
    return match.group(1)


@pytest.fixture(scope="module")
def webapp_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`).")
    pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed")
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the axios package cannot be fetched")
    packages = tmp_path_factory.mktemp("npm")
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(packages), f"axios@{AXIOS_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0:
        pytest.skip(f"axios could not be installed with npm: {installed.stderr[-300:]}")
    site = tmp_path_factory.mktemp("webapp")
    shutil.copy(packages / "node_modules" / "axios" / "dist" / "esm" / "axios.min.js", site / "axios.mjs")
    shutil.copy(HARNESS, site / "index.html")
    (site / "api.js").write_text(_client_code())
    return site


class _StaticFiles(SimpleHTTPRequestHandler):
    extensions_map = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", "": "text/plain"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def webapp_origin(webapp_files: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(_StaticFiles, directory=str(webapp_files)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def auth_server(webapp_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProcess]:
    workdir = tmp_path_factory.mktemp("web-auth")
    env = server_env(
        DATABASE_URL=f"sqlite:///{workdir / 'auth.sqlite3'}",
        CACHE_URL="locmemcache://",
        CORS_ALLOWED_ORIGINS=webapp_origin,
        # Plain HTTP on 127.0.0.1: the browser would not send Secure cookies back.
        SECURE_COOKIES="False",
        LOGIN_RATE="1000/min",
    )
    manage("migrate", "--no-input", env=env)
    server = auth_server_start("web-auth", env=env, log_dir=workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(webapp_files: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"], headless=True
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def email(auth_server: LiveProcess) -> str:
    address = f"web-{uuid.uuid4().hex[:10]}@example.com"
    with auth_server.client() as client:
        response = client.post("/api/accounts/signup/", json={"email": address, "password": PASSWORD, "name": "Web"})
    assert response.status_code == 201, response.text
    return address


@pytest.fixture
def open_app(browser: Any, webapp_origin: str, auth_server: LiveProcess) -> Iterator[Callable[..., Any]]:
    """Open the web app in a tab of one browser profile (shared cookies and localStorage)."""
    context = browser.new_context()
    context.set_default_timeout(15_000)

    def open_tab() -> Any:
        page = context.new_page()
        page.goto(f"{webapp_origin}/index.html?api={auth_server.url}")
        page.wait_for_selector("body[data-ready='yes']", state="attached")
        return page

    yield open_tab
    context.close()


class Watcher:
    """Every token request a browser profile sends, and every token answer it gets."""

    def __init__(self, page: Any) -> None:
        self.refreshes: list[str] = []
        self.codes: list[str] = []
        page.context.on("request", self._request)
        page.context.on("response", self._response)

    def wait_for(self, page: Any, *, answers: int, seconds: float = 10) -> None:
        """Let Playwright deliver the response events still in flight (they trail `evaluate`)."""
        for _ in range(int(seconds * 20)):
            if len(self.codes) >= answers:
                return
            page.wait_for_timeout(50)

    def _request(self, request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/api/token/refresh/"):
            self.refreshes.append(request.url)

    def _response(self, response: Any) -> None:
        if response.status == 401:
            try:
                self.codes.append(response.json().get("code", ""))
            except Exception:  # noqa: BLE001 - a preflight or an empty body has no JSON
                self.codes.append("")


def _reload(page: Any) -> None:
    """A reload: the access token in memory is gone; the cookie and localStorage stay."""
    page.reload()
    page.wait_for_selector("body[data-ready='yes']", state="attached")


def test_parallel_calls_without_an_access_token_share_one_refresh(open_app: Any, email: str) -> None:
    page = open_app()
    page.evaluate("([e, p]) => client.signIn(e, p)", [email, PASSWORD])
    assert page.evaluate("() => localStorage.getItem('auth.csrf')")
    _reload(page)
    watcher = Watcher(page)

    statuses = page.evaluate(PARALLEL_CALLS, 8)

    assert statuses == [200] * 8
    assert len(watcher.refreshes) == 1
    assert set(watcher.codes) <= {"not_authenticated"}
    # The new access token is used from now on: no further refresh.
    assert page.evaluate(PARALLEL_CALLS, 3) == [200] * 3
    assert len(watcher.refreshes) == 1


def test_two_tabs_refreshing_at_once_take_turns_and_keep_the_session(open_app: Any, email: str) -> None:
    first = open_app()
    first.evaluate("([e, p]) => client.signIn(e, p)", [email, PASSWORD])
    _reload(first)
    second = open_app()
    watcher = Watcher(first)

    # Both tabs start without an access token and fire at the same moment
    # (a shared wall-clock instant, so that their refreshes overlap).
    start_at = first.evaluate("() => Date.now()") + 500
    for tab in (first, second):
        tab.evaluate(
            "at => { window.calls = new Promise(go => setTimeout(go, at - Date.now()))"
            f".then(() => ({PARALLEL_CALLS})(5)); }}",
            start_at,
        )
    results = [tab.evaluate("() => window.calls") for tab in (first, second)]

    assert results == [[200] * 5, [200] * 5]
    assert len(watcher.refreshes) == 2  # one per tab, one after the other
    assert "token_reused" not in watcher.codes
    # The login session survived both refreshes.
    _reload(first)
    assert first.evaluate(PARALLEL_CALLS, 1) == [200]


def test_a_revoked_session_is_not_refreshed(open_app: Any, email: str, auth_server: LiveProcess) -> None:
    page = open_app()
    page.evaluate("([e, p]) => client.signIn(e, p)", [email, PASSWORD])
    assert page.evaluate(PARALLEL_CALLS, 1) == [200]
    watcher = Watcher(page)

    # "Sign out everywhere" from another device ends this browser's session too.
    with auth_server.client() as client:
        pair = client.post("/api/token/", json={"email": email, "password": PASSWORD}).json()
        revoked = client.post("/api/token/logout/all/", headers={"Authorization": f"Bearer {pair['access']}"})
    assert revoked.status_code == 200

    assert page.evaluate(PARALLEL_CALLS, 3) == [401] * 3
    watcher.wait_for(page, answers=3)
    assert watcher.refreshes == []  # session_revoked: refreshing cannot help
    assert set(watcher.codes) == {"session_revoked"}


def test_sign_out_ends_the_session_and_forgets_the_csrf_token(open_app: Any, email: str) -> None:
    page = open_app()
    page.evaluate("([e, p]) => client.signIn(e, p)", [email, PASSWORD])
    page.evaluate("() => client.signOut()")
    assert page.evaluate("() => localStorage.getItem('auth.csrf')") is None
    watcher = Watcher(page)

    assert page.evaluate(PARALLEL_CALLS, 2) == [401, 401]
    assert len(watcher.refreshes) == 1  # tried once, refused: the cookie is gone
