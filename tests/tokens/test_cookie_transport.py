"""The browser transports of the token API: refresh cookie with CSRF and Origin, CORS, the session bridge, sign-up."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from conftest import PASSWORD
from tokens import conf
from tokens.authentication import SESSION_SID_KEY
from tokens.models import LoginSession, OutstandingToken
from tokens.tokens import AccessToken, RefreshToken

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
COOKIE: dict[str, Any] = {"HTTP_X_TOKEN_TRANSPORT": "cookie"}


@pytest.fixture(autouse=True)
def _web_app_origin(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CSRF_TRUSTED_ORIGINS = [APP]


@pytest.fixture
def browser_client() -> APIClient:
    """A client that, like a browser, is held to Django's CSRF checks."""
    return APIClient(enforce_csrf_checks=True)


def cookie_sign_in(client: APIClient, **extra: Any) -> Any:
    response = client.post(
        "/api/token/", {"email": "ada@example.com", "password": PASSWORD}, format="json", **COOKIE, **extra
    )
    assert response.status_code == 200, response.content
    return response


def cookie_post(client: APIClient, path: str, csrf: str | None, origin: str | None = APP) -> Any:
    headers: dict[str, Any] = {}
    if csrf is not None:
        headers["HTTP_X_CSRFTOKEN"] = csrf
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    return client.post(path, {}, format="json", **COOKIE, **headers)


def refresh_cookie_value(client: APIClient) -> str:
    return client.cookies["refresh_token"].value


# -- sign in with the cookie transport -----------------------------------------------------


def test_cookie_sign_in_puts_the_refresh_token_in_an_httponly_cookie_only(browser_client: APIClient, user: Any) -> None:
    response = cookie_sign_in(browser_client)

    body = response.json()
    assert set(body) == {"access", "access_expires_at", "refresh_expires_at", "csrf_token"}
    cookie = response.cookies["refresh_token"]
    assert cookie["httponly"] is True
    assert cookie["path"] == "/api/token/"
    assert int(cookie["max-age"]) == int(conf.refresh_lifetime().total_seconds())
    refresh = RefreshToken(cookie.value)
    assert refresh.sid == AccessToken(body["access"]).sid
    # Django's CSRF cookie, whose token the body repeats for an app that cannot read it.
    assert response.cookies["csrftoken"].value
    assert body["csrf_token"]


def test_without_the_header_the_refresh_token_stays_in_the_body(api_client: APIClient, user: Any) -> None:
    response = api_client.post("/api/token/", {"email": "ada@example.com", "password": PASSWORD}, format="json")
    assert "refresh" in response.json()
    assert "csrf_token" not in response.json()
    assert "refresh_token" not in response.cookies


@pytest.mark.parametrize("samesite", ["Lax", "Strict", "None"])
@pytest.mark.parametrize("secure", [True, False])
def test_refresh_cookie_flags_follow_the_settings(
    settings: Any, browser_client: APIClient, user: Any, samesite: str, secure: bool
) -> None:
    settings.JWT_COOKIE_SAMESITE = samesite
    settings.SECURE_COOKIES = secure
    cookie = cookie_sign_in(browser_client).cookies["refresh_token"]
    assert cookie["samesite"] == samesite
    assert bool(cookie["secure"]) is secure
    assert f"SameSite={samesite}" in cookie.OutputString()


@pytest.mark.parametrize("value", ["cookie", "Cookie", " COOKIE "])
def test_transport_header_is_case_insensitive(browser_client: APIClient, user: Any, value: str) -> None:
    response = browser_client.post(
        "/api/token/",
        {"email": "ada@example.com", "password": PASSWORD},
        format="json",
        HTTP_X_TOKEN_TRANSPORT=value,
    )
    assert "refresh" not in response.json()
    assert "refresh_token" in response.cookies


# -- refresh from the cookie --------------------------------------------------------------


@pytest.mark.parametrize("origin", [APP, "http://testserver"], ids=["web-app", "same-origin"])
def test_cookie_refresh_with_csrf_and_allowed_origin_rotates_the_cookie(
    browser_client: APIClient, user: Any, origin: str
) -> None:
    csrf = cookie_sign_in(browser_client).json()["csrf_token"]
    first = refresh_cookie_value(browser_client)

    response = cookie_post(browser_client, "/api/token/refresh/", csrf, origin)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "refresh_expires_at", "csrf_token"}
    second = response.cookies["refresh_token"]
    assert second.value != first
    assert second["httponly"] is True and second["path"] == "/api/token/"
    assert RefreshToken(second.value).sid == RefreshToken(first).sid == AccessToken(body["access"]).sid
    assert OutstandingToken.objects.get(jti=RefreshToken(first).jti).blacklisted_at is not None
    # The rotated cookie works for the next refresh; the old one is reuse.
    assert cookie_post(browser_client, "/api/token/refresh/", body["csrf_token"]).status_code == 200
    reused = APIClient().post("/api/token/refresh/", {"refresh": first}, format="json")
    assert reused.json()["code"] == "token_reused"


@pytest.mark.parametrize(
    ("csrf", "origin"),
    [
        (None, APP),
        ("wrong-token-" + "x" * 52, APP),
        ("VALID", None),
        ("VALID", EVIL),
        ("VALID", "null"),
        ("VALID", APP + ".evil.net"),
    ],
    ids=["no-csrf-header", "wrong-csrf", "no-origin", "foreign-origin", "null-origin", "lookalike-origin"],
)
@pytest.mark.parametrize("path", ["/api/token/refresh/", "/api/token/logout/"])
def test_cookie_refresh_and_logout_refuse_without_csrf_or_allowed_origin(
    browser_client: APIClient, user: Any, path: str, csrf: str | None, origin: str | None
) -> None:
    good_csrf = cookie_sign_in(browser_client).json()["csrf_token"]
    before = refresh_cookie_value(browser_client)

    response = cookie_post(browser_client, path, good_csrf if csrf == "VALID" else csrf, origin)

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert "refresh_token" not in response.cookies
    # Nothing changed: the session is live and the same cookie still refreshes.
    assert not LoginSession.objects.filter(revoked_at__isnull=False).exists()
    assert OutstandingToken.objects.get(jti=RefreshToken(before).jti).blacklisted_at is None
    assert cookie_post(browser_client, "/api/token/refresh/", good_csrf).status_code == 200


@pytest.mark.parametrize("path", ["/api/token/refresh/", "/api/token/logout/"])
def test_cookie_refresh_and_logout_refuse_without_the_csrf_cookie(
    browser_client: APIClient, user: Any, path: str
) -> None:
    csrf = cookie_sign_in(browser_client).json()["csrf_token"]
    del browser_client.cookies["csrftoken"]
    response = cookie_post(browser_client, path, csrf)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_cookie_refresh_of_an_ended_session_is_401_and_expires_the_cookie(browser_client: APIClient, user: Any) -> None:
    body = cookie_sign_in(browser_client).json()
    LoginSession.objects.update(revoked_at="2020-01-01T00:00:00Z")
    response = cookie_post(browser_client, "/api/token/refresh/", body["csrf_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "session_revoked"
    assert response.cookies["refresh_token"].value == ""
    assert response.cookies["refresh_token"]["max-age"] == 0


def test_refresh_with_nothing_is_401(browser_client: APIClient, db: None) -> None:
    response = browser_client.post("/api/token/refresh/", {}, format="json", HTTP_ORIGIN=APP)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


# -- logout from the cookie ---------------------------------------------------------------


def test_cookie_logout_revokes_the_session_and_expires_the_cookie(browser_client: APIClient, user: Any) -> None:
    body = cookie_sign_in(browser_client).json()

    response = cookie_post(browser_client, "/api/token/logout/", body["csrf_token"])

    assert response.status_code == 204
    expired = response.cookies["refresh_token"]
    assert expired.value == ""
    assert expired["max-age"] == 0
    assert expired["path"] == "/api/token/"
    login_session = LoginSession.objects.get()
    assert login_session.revoke_reason == LoginSession.RevokeReason.LOGOUT
    bearer = APIClient(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert bearer.get("/api/me/").status_code == 401


@pytest.mark.parametrize("path", ["/api/token/logout/", "/api/token/refresh/"])
def test_an_unusable_refresh_cookie_is_expired_not_left_behind(browser_client: APIClient, user: Any, path: str) -> None:
    # Bug: logout answered 401 for a cookie it could not read (garbage, a
    # revoked signing key) and left it in the browser, where every later
    # refresh or logout would send it again.
    csrf = cookie_sign_in(browser_client).json()["csrf_token"]
    browser_client.cookies["refresh_token"] = "not.a.token"
    response = cookie_post(browser_client, path, csrf)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    expired = response.cookies["refresh_token"]
    assert expired.value == ""
    assert expired["max-age"] == 0
    assert expired["path"] == "/api/token/"


# -- CORS -------------------------------------------------------------------------------------


def preflight(client: APIClient, path: str, origin: str) -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-token-transport,x-csrftoken",
    )


@pytest.mark.parametrize("path", ["/api/token/", "/api/token/refresh/", "/api/token/logout/", "/api/me/"])
def test_preflight_from_the_web_app_allows_credentials_and_the_transport_headers(
    api_client: APIClient, path: str
) -> None:
    response = preflight(api_client, path, APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"x-token-transport", "x-csrftoken", "content-type", "authorization"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_preflight_from_another_origin_gets_no_cors_headers(api_client: APIClient) -> None:
    response = preflight(api_client, "/api/token/", EVIL)
    assert not any(h.lower().startswith("access-control-") for h in response.headers)


def test_cors_headers_on_the_real_response_only_for_the_web_app(api_client: APIClient, user: Any) -> None:
    allowed = cookie_sign_in(api_client, HTTP_ORIGIN=APP)
    assert allowed["Access-Control-Allow-Origin"] == APP
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    other = cookie_sign_in(api_client, HTTP_ORIGIN=EVIL)
    assert not any(h.lower().startswith("access-control-") for h in other.headers)


def test_no_cors_on_the_html_pages(api_client: APIClient) -> None:
    response = api_client.get("/accounts/login/", HTTP_ORIGIN=APP)
    assert "Access-Control-Allow-Origin" not in response


# -- the session-to-token bridge -------------------------------------------------------------


def signed_in_browser(email: str = "ada@example.com") -> tuple[Client, str]:
    """A browser signed in on the HTML page, with its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        {"username": email, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 302
    return client, client.cookies["csrftoken"].value


def test_session_bridge_returns_a_pair_for_the_same_login_session(user: Any) -> None:
    client, csrf = signed_in_browser()
    sid = client.session[SESSION_SID_KEY]

    response = client.post("/api/token/session/", {}, "application/json", HTTP_X_CSRFTOKEN=csrf)

    assert response.status_code == 200, response.content
    body = response.json()
    assert AccessToken(body["access"]).sid == sid
    assert RefreshToken(body["refresh"]).sid == sid
    assert LoginSession.objects.count() == 1
    assert LoginSession.objects.get().transport == LoginSession.Transport.BOTH
    bearer = APIClient(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    me = bearer.get("/api/me/")
    assert me.status_code == 200 and me.json()["email"] == "ada@example.com"


def test_session_bridge_with_the_cookie_transport(user: Any) -> None:
    client, csrf = signed_in_browser()
    response = client.post("/api/token/session/", {}, "application/json", HTTP_X_CSRFTOKEN=csrf, **COOKIE)
    assert response.status_code == 200
    assert "refresh" not in response.json()
    assert RefreshToken(response.cookies["refresh_token"].value).sid == client.session[SESSION_SID_KEY]


def test_session_bridge_needs_the_csrf_token(user: Any) -> None:
    client, _ = signed_in_browser()
    response = client.post("/api/token/session/", {}, "application/json")
    assert response.status_code == 403
    assert not OutstandingToken.objects.exists()
    assert LoginSession.objects.get().transport == LoginSession.Transport.SESSION


def test_session_bridge_needs_a_session(db: None) -> None:
    response = APIClient(enforce_csrf_checks=True).post("/api/token/session/")
    assert response.status_code in (401, 403)
    assert not OutstandingToken.objects.exists()


def test_session_bridge_ignores_bearer_tokens(auth_client: APIClient) -> None:
    assert auth_client.post("/api/token/session/").status_code in (401, 403)
    assert OutstandingToken.objects.count() == 1


def test_signing_out_of_the_page_ends_the_bridged_tokens(user: Any, django_capture_on_commit_callbacks: Any) -> None:
    client, csrf = signed_in_browser()
    pair = client.post("/api/token/session/", {}, "application/json", HTTP_X_CSRFTOKEN=csrf).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf}).status_code == 302
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {pair['access']}").get("/api/me/").status_code == 401
    assert APIClient().post("/api/token/refresh/", {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_signing_out_with_the_bridged_token_ends_the_browser_session(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, csrf = signed_in_browser()
    pair = client.post("/api/token/session/", {}, "application/json", HTTP_X_CSRFTOKEN=csrf).json()
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post("/api/token/logout/", {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 204
    assert client.get("/accounts/").status_code == 302


# -- sign-up through the API -------------------------------------------------------------------


def test_api_sign_up_creates_the_account(api_client: APIClient, db: None) -> None:
    response = api_client.post(
        "/api/accounts/signup/",
        {"email": "Grace@Example.com", "password": "a long and unusual passphrase", "name": "Grace"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "admin", "date_joined"}
    assert body["email"] == "grace@example.com" and body["name"] == "Grace" and body["admin"] is False
    assert User.objects.get(email="grace@example.com").check_password("a long and unusual passphrase")
    assert "refresh" not in body and "access" not in body


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "new@example.com", "password": "short"}, "password"),
        ({"email": "new@example.com", "password": "password123"}, "password"),
        ({"email": "new@example.com", "password": "98765432109876"}, "password"),
        ({"email": "ADA@example.com", "password": "a long and unusual passphrase"}, "email"),
        ({"email": "not-an-email", "password": "a long and unusual passphrase"}, "email"),
        ({"password": "a long and unusual passphrase"}, "email"),
        ({"email": "new@example.com"}, "password"),
        ({"email": "new@example.com", "password": "a long and unusual passphrase", "is_staff": True}, "is_staff"),
        ({"email": "new@example.com", "password": "a long and unusual passphrase", "name": "x" * 151}, "name"),
        ({"email": ["new@example.com"], "password": "a long and unusual passphrase"}, "email"),
    ],
    ids=["short", "common", "numeric", "taken", "bad-email", "no-email", "no-password", "unknown", "long-name", "list"],
)
def test_api_sign_up_answers_400_with_the_field_error(
    api_client: APIClient, user: Any, data: dict[str, Any], field: str
) -> None:
    response = api_client.post("/api/accounts/signup/", data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] and body["code"]
    assert field in body["errors"]
    assert User.objects.count() == 1


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"{", b"null"])
def test_api_sign_up_refuses_what_is_not_a_json_object(api_client: APIClient, db: None, raw: bytes) -> None:
    response = api_client.post("/api/accounts/signup/", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"]
    assert not User.objects.exists()
