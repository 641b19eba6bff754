"""The OpenAPI schema and Swagger UI: complete, valid, true to the server, and served from this server only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from conftest import obtain

BASE_DIR = Path(__file__).resolve().parents[2]
# The schema and its UI describe everything else; they are not operations.
SELF_DESCRIBING = {"/api/schema/", "/api/docs/"}
ERROR_REFS = {"#/components/schemas/Error", "#/components/schemas/ValidationError"}


def _routes(patterns: list[Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found.extend(_routes(entry.url_patterns, route))
        elif isinstance(entry, URLPattern):
            found.append(route)
    return found


def _api_paths() -> set[str]:
    """Every URL the project routes under /api/, in OpenAPI's `{name}` notation."""
    paths = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route) for route in _routes(get_resolver().url_patterns)}
    return {p for p in paths if p.startswith("/api/")}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["components"]["schemas"][name]


def _assert_shape(body: dict[str, Any], component: dict[str, Any]) -> None:
    """The body has every required property and none the schema does not name."""
    assert set(component.get("required", [])) <= set(body), (body, component)
    assert set(body) <= set(component["properties"]), (body, component)


def test_schema_generates_and_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=BASE_DIR,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    assert "Error" not in result.stderr
    assert out.read_text().startswith("openapi: 3.")


def test_every_api_url_is_in_the_schema(schema: dict[str, Any]) -> None:
    expected = _api_paths() - SELF_DESCRIBING
    assert "/api/token/" in expected  # the walk found the routes at all
    assert expected <= set(schema["paths"]), sorted(expected - set(schema["paths"]))


def test_every_operation_has_a_summary_a_success_and_typed_errors(schema: dict[str, Any]) -> None:
    for path, method, operation in _operations(schema):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), where
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref in ERROR_REFS, where
                assert response["description"], where
        if "requestBody" in operation:
            assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ValidationError"), where
        if operation.get("security") != [{}]:
            assert "401" in responses, where
            assert {name for requirement in operation["security"] for name in requirement} <= {
                "jwtAuth",
                "cookieAuth",
            }, where


def test_security_schemes_are_the_bearer_token_and_the_session_cookie(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["cookieAuth"]["in"] == "cookie"


def test_schema_is_served_as_openapi_json(client: Any) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.django_db
def test_error_bodies_match_the_error_components(schema: dict[str, Any], api_client: Any, user: Any) -> None:
    error, validation = _component(schema, "Error"), _component(schema, "ValidationError")

    wrong_password = obtain(api_client, password="not the password")
    assert wrong_password.status_code == 401
    _assert_shape(wrong_password.json(), error)

    malformed = api_client.post("/api/token/", {"email": "a@example.com", "passwrd": "x"}, format="json")
    assert malformed.status_code == 400
    _assert_shape(malformed.json(), validation)
    assert set(malformed.json()) == {"detail", "code", "errors"}

    anonymous = api_client.get("/api/me/")
    assert anonymous.status_code == 401
    _assert_shape(anonymous.json(), error)


@pytest.mark.django_db
def test_success_bodies_match_their_components(schema: dict[str, Any], api_client: Any, user: Any) -> None:
    pair = obtain(api_client).json()
    _assert_shape(pair, _component(schema, "TokenPair"))
    cookie_pair = obtain(api_client, HTTP_X_TOKEN_TRANSPORT="cookie").json()
    _assert_shape(cookie_pair, _component(schema, "TokenPair"))
    assert "csrf_token" in cookie_pair

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    _assert_shape(api_client.get("/api/me/").json(), _component(schema, "User"))
    sessions = api_client.get("/api/sessions/").json()
    assert sessions
    for item in sessions:
        _assert_shape(item, _component(schema, "LoginSession"))


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.urls.extend(value for name, value in attrs if name in {"src", "href"} and value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def test_swagger_ui_uses_only_assets_of_this_server(client: Any) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    collector = _AssetCollector()
    collector.feed(page.content.decode())
    inline = "\n".join(collector.scripts)
    # Anything the page or its inline script would fetch from elsewhere.
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page.content.decode(), re.IGNORECASE)
    assert collector.urls, "the page names no assets at all"
    schema_urls = re.findall(r'url:\s*"([^"]+)"', inline)
    assert schema_urls == ["/api/schema/"]
    for url in [*collector.urls, *schema_urls]:
        assert url.startswith("/") and not url.startswith("//"), url
        response = client.get(url)
        assert response.status_code == 200, url
        if url.endswith(".js"):
            assert b"".join(response.streaming_content if response.streaming else [response.content])


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _collect_errors(message: Any, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


@pytest.mark.browser
@pytest.mark.live
def test_swagger_ui_renders_in_a_browser_without_any_outside_request(tmp_path: Path) -> None:
    """Headless Chromium loads /api/docs/ from a real server: every request stays on it, no CSP error."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`).")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed")
    from tests.live import auth_server_start, manage, server_env

    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'docs.sqlite3'}", CACHE_URL="locmemcache://")
    manage("migrate", "--no-input", env=env)
    server = auth_server_start("docs", env=env, log_dir=tmp_path)
    requested: list[str] = []
    console_errors: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"], headless=True
            )
            try:
                page = browser.new_page()
                page.on("request", lambda request: requested.append(request.url))
                page.on("console", lambda message: _collect_errors(message, console_errors))
                page.goto(f"{server.url}/api/docs/")
                page.wait_for_selector(".opblock-summary-path", timeout=20_000)
                paths = page.locator(".opblock-summary-path").all_inner_texts()
            finally:
                browser.close()
    finally:
        server.stop()
    assert "/api/token/" in [p.strip() for p in paths]
    outside = [url for url in requested if not url.startswith((server.url + "/", "data:", "blob:"))]
    assert outside == []
    assert f"{server.url}/api/schema/" in requested
    assert console_errors == []
