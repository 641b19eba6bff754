"""A web app on a second origin signs in with the cookie transport, in headless Chromium.

The page (tests/browser/webapp) keeps the access token in memory and lets
the browser hold the refresh token in the API's HttpOnly cookie; every call
is fetch(..., {credentials: "include"}) across origins, through CORS.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "a long and unusual passphrase 42"


def api_sign_up(base: str, email: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/accounts/signup/",
        data=json.dumps({"email": email, "password": PASSWORD, "name": "Web App"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def step(page: Any, name: str) -> dict[str, str]:
    """Wait for the page to finish `name` and return what it shows."""
    page.wait_for_selector(f"body[data-done='{name}']")
    fields = ("status", "keys", "access-tail", "who", "cookies", "error")
    return {field: page.locator(f"#{field}").inner_text() for field in fields}


def sign_in(page: Any, email: str) -> dict[str, str]:
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    return step(page, "sign-in")


def test_web_app_signs_in_refreshes_and_signs_out_with_the_refresh_cookie(
    live_server_process: Any, webapp_origin: str, new_context: Any, unique_email: Any
) -> None:
    api = live_server_process.url
    email = unique_email("webapp")
    api_sign_up(api, email)
    context = new_context()
    page = context.new_page()
    page.goto(f"{webapp_origin}/index.html?api={api}")

    signed_in = sign_in(page, email)
    assert signed_in["status"] == "200"
    assert signed_in["keys"] == "access,access_expires_at,csrf_token,refresh_expires_at"
    # The refresh token is HttpOnly: the browser holds it, no script can read it.
    assert "refresh_token" not in signed_in["cookies"]
    cookies = {c["name"]: c for c in context.cookies(f"{api}/api/token/")}
    assert cookies["refresh_token"]["httpOnly"] is True
    assert cookies["refresh_token"]["path"] == "/api/token/"
    assert cookies["refresh_token"]["sameSite"] == "Lax"

    page.click("#me")
    assert step(page, "me")["who"] == email

    # A refresh without the CSRF header is refused and changes nothing.
    page.click("#refresh-without-csrf")
    refused = step(page, "refresh-without-csrf")
    assert (refused["status"], refused["error"]) == ("403", "csrf_failed")

    first_cookie = cookies["refresh_token"]["value"]
    page.click("#refresh")
    refreshed = step(page, "refresh")
    assert refreshed["status"] == "200"
    assert refreshed["access-tail"] != signed_in["access-tail"]
    rotated = {c["name"]: c["value"] for c in context.cookies(f"{api}/api/token/")}["refresh_token"]
    assert rotated != first_cookie
    page.click("#me")
    assert step(page, "me")["who"] == email

    page.click("#logout")
    assert step(page, "logout")["status"] == "204"
    assert "refresh_token" not in {c["name"] for c in context.cookies(f"{api}/api/token/")}
    page.click("#refresh")
    after = step(page, "refresh")
    assert (after["status"], after["error"]) == ("401", "token_not_valid")
    page.click("#me")
    assert step(page, "me")["status"] == "401"


def test_an_origin_the_server_does_not_allow_gets_nothing(
    live_server_process: Any, webapp_origin: str, new_context: Any, unique_email: Any
) -> None:
    api = live_server_process.url
    email = unique_email("foreign")
    api_sign_up(api, email)
    context = new_context()
    page = context.new_page()
    # Same files, another origin (localhost is not 127.0.0.1 to the browser).
    page.goto(f"{webapp_origin.replace('127.0.0.1', 'localhost')}/index.html?api={api}")

    result = sign_in(page, email)

    assert result["status"] == "failed"  # the browser withholds the answer
    assert "Failed to fetch" in result["error"]
