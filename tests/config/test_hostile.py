"""Hostile requests: each gets a JSON 4xx, never a 5xx or an HTML page, and changes nothing.

The table runs twice, with DEBUG off and on: with DEBUG on Django answers
with its technical pages, which config.middleware.ApiErrorMiddleware must
still turn into JSON.
"""

# One case per line reads as a table; the lines are long on purpose.
# ruff: noqa: E501

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import User
from conftest import obtain
from tokens.models import LoginSession, OutstandingToken, SigningKey

pytestmark = pytest.mark.django_db

TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
VERIFY = "/api/token/verify/"
SIGNUP = "/api/accounts/signup/"
ME = "/api/me/"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


ALG_NONE = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': '1', 'token_type': 'access', 'sid': 'x'})}."
HS256 = jwt.encode({"sub": "1", "token_type": "access"}, "a" * 32, algorithm="HS256", headers={"kid": "x"})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass
class Case:
    group: str
    name: str
    method: str
    path: str
    status: int
    body: bytes | str | Any = None  # bytes/str are sent raw, anything else as JSON
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = False  # send a valid bearer token (so the hostile part is elsewhere)

    def raw_body(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8", "surrogatepass")
        return json.dumps(self.body).encode()


CRED = {"email": "ada@example.com", "password": "not the password"}
CASES = [
    # -- malformed JSON ------------------------------------------------------------
    Case("malformed JSON", "truncated", "POST", TOKEN, 400, '{"email": "ada@example.com", "password": '),
    Case("malformed JSON", "not JSON", "POST", TOKEN, 400, "hello"),
    Case("malformed JSON", "invalid UTF-8", "POST", TOKEN, 400, b'{"email": "\xff\xfe"}'),
    Case("malformed JSON", "nested 30000 deep", "POST", TOKEN, 400, nested(30000)),
    Case("malformed JSON", "nested 30000 deep, refresh", "POST", REFRESH, 400, nested(30000)),
    Case("malformed JSON", "field nested 500 deep", "POST", TOKEN, 400, '{"email": ' + nested(500) + "}"),
    Case("malformed JSON", "NaN literal", "POST", TOKEN, 400, '{"email": NaN, "password": "x"}'),
    Case("malformed JSON", "Infinity literal", "POST", VERIFY, 400, '{"token": Infinity}'),
    Case("malformed JSON", "5000-digit integer", "POST", TOKEN, 400, '{"email": ' + "9" * 5000 + "}"),
    Case("malformed JSON", "empty body", "POST", TOKEN, 400, b""),
    Case("malformed JSON", "null", "POST", TOKEN, 400, "null"),
    Case("malformed JSON", "array", "POST", TOKEN, 400, "[]"),
    Case("malformed JSON", "string", "POST", SIGNUP, 400, '"ada@example.com"'),
    Case("malformed JSON", "number", "POST", REFRESH, 400, "42"),
    # -- wrong types ------------------------------------------------------------------
    Case("wrong types", "email as number", "POST", TOKEN, 401, {"email": 123, "password": "x"}),
    Case("wrong types", "password as bool", "POST", TOKEN, 400, {"email": "ada@example.com", "password": True}),
    Case("wrong types", "password as object", "POST", TOKEN, 400, {"email": "ada@example.com", "password": {}}),
    Case("wrong types", "email as list", "POST", TOKEN, 400, {"email": ["ada@example.com"], "password": "x"}),
    Case("wrong types", "refresh as number", "POST", REFRESH, 401, {"refresh": 123}),
    Case("wrong types", "refresh as list", "POST", REFRESH, 400, {"refresh": ["a"]}),
    Case("wrong types", "token as null", "POST", VERIFY, 400, {"token": None}),
    Case("wrong types", "signup name as list", "POST", SIGNUP, 400, {"email": "x@example.com", "password": "p" * 12, "name": []}),
    Case("wrong types", "signup email not an email", "POST", SIGNUP, 400, {"email": "not-an-email", "password": "Zq8!vLm#2pRt"}),
    # -- NUL bytes, huge strings, odd Unicode ---------------------------------------
    Case("NUL, huge, Unicode", "NUL in email", "POST", TOKEN, 400, {"email": "ada\u0000@example.com", "password": "x"}),
    Case("NUL, huge, Unicode", "NUL in password", "POST", TOKEN, 400, {"email": "ada@example.com", "password": "a\u0000b"}),
    Case("NUL, huge, Unicode", "NUL in signup name", "POST", SIGNUP, 400, {"email": "n@example.com", "password": "Zq8!vLm#2pRt", "name": "\u0000"}),
    Case("NUL, huge, Unicode", "NUL in token", "POST", VERIFY, 400, {"token": "a\u0000b"}),
    Case("NUL, huge, Unicode", "10000-char email", "POST", TOKEN, 400, {"email": "a" * 10000, "password": "x"}),
    Case("NUL, huge, Unicode", "5000-char password", "POST", TOKEN, 400, {"email": "ada@example.com", "password": "x" * 5000}),
    Case("NUL, huge, Unicode", "5000-char token", "POST", VERIFY, 401, {"token": "a" * 5000}),
    Case("NUL, huge, Unicode", "lone surrogate in email", "POST", TOKEN, 400, '{"email": "\\ud800@example.com", "password": "x"}'),
    Case("NUL, huge, Unicode", "lone surrogate in signup", "POST", SIGNUP, 400, '{"email": "\\ud800@example.com", "password": "Zq8!vLm#2pRt"}'),
    Case("NUL, huge, Unicode", "emoji and RTL email", "POST", TOKEN, 401, {"email": "\u202e\U0001f600@example.com", "password": "x"}),
    # Tokens skip DRF's surrogate scan only when they are ASCII (tokens.serializers.TokenField).
    Case("NUL, huge, Unicode", "lone surrogate in refresh token", "POST", REFRESH, 400, '{"refresh": "eyJ\\ud800.x.y"}'),
    Case("NUL, huge, Unicode", "lone surrogate in token to verify", "POST", VERIFY, 400, '{"token": "\\udfff"}'),
    Case("NUL, huge, Unicode", "NUL in refresh token", "POST", REFRESH, 400, {"refresh": "eyJ\u0000.x.y"}),
    Case("NUL, huge, Unicode", "non-ASCII refresh token", "POST", REFRESH, 401, {"refresh": "eyJé.x.y"}),
    # -- unknown fields -----------------------------------------------------------------
    Case("unknown fields", "_connector", "POST", TOKEN, 400, {**CRED, "_connector": "OR"}),
    Case("unknown fields", "is_staff on signup", "POST", SIGNUP, 400, {"email": "s@example.com", "password": "Zq8!vLm#2pRt", "is_staff": True}),
    Case("unknown fields", "__proto__ on refresh", "POST", REFRESH, 400, {"refresh": "x", "__proto__": {"admin": True}}),
    Case("unknown fields", "email__startswith", "POST", TOKEN, 400, {"email__startswith": "a", "password": "x"}),
    Case("unknown fields", "1000 unknown fields", "POST", VERIFY, 400, {f"f{i}": i for i in range(1000)}),
    # -- size and media type --------------------------------------------------------------
    Case("size, media type", "70 KiB body", "POST", TOKEN, 413, {"email": "a@example.com", "password": "x" * 70_000}),
    Case("size, media type", "Content-Length claims 10 MB", "POST", TOKEN, 413, CRED, headers={"CONTENT_LENGTH": str(10 * 1024 * 1024)}),
    Case("size, media type", "70 KiB body to signup", "POST", SIGNUP, 413, {"email": "a@example.com", "name": "n" * 70_000}),
    Case("size, media type", "text/plain", "POST", TOKEN, 415, json.dumps(CRED), content_type="text/plain"),
    Case("size, media type", "form-encoded", "POST", TOKEN, 415, "email=a%40b.c&password=x", content_type="application/x-www-form-urlencoded"),
    Case("size, media type", "multipart", "POST", SIGNUP, 415, "--x\r\n\r\n--x--", content_type="multipart/form-data; boundary=x"),
    Case("size, media type", "XML", "POST", REFRESH, 415, "<refresh>x</refresh>", content_type="application/xml"),
    # -- Authorization header ----------------------------------------------------------
    Case("Authorization", "Bearer alone", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer"}),
    Case("Authorization", "three parts", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer a b"}),
    Case("Authorization", "empty", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": ""}),
    Case("Authorization", "garbage token", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer !!!"}),
    Case("Authorization", "three dots", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer a.b.c"}),
    Case("Authorization", "Latin-1 bytes", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer \xe9\xff\xe0.\xe9.\xe9"}),
    Case("Authorization", "non-Latin-1 text", "GET", ME, 400, headers={"HTTP_AUTHORIZATION": "Bearer \u4ee4\u724c"}),
    Case("Authorization", "Basic scheme", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Basic YWRhOnBhc3N3b3Jk"}),
    Case("Authorization", "alg none", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": f"Bearer {ALG_NONE}"}),
    Case("Authorization", "HS256 with a guessed secret", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": f"Bearer {HS256}"}),
    Case("Authorization", "10000-char token", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer " + "a" * 10000}),
    Case("Authorization", "NUL in header", "GET", ME, 401, headers={"HTTP_AUTHORIZATION": "Bearer a\x00b"}),
    # -- paths and methods ------------------------------------------------------------------
    Case("paths, methods", "malformed UUID", "DELETE", "/api/sessions/not-a-uuid/", 404, auth=True),
    Case("paths, methods", "UUID with NUL", "DELETE", "/api/sessions/%00/", 404, auth=True),
    Case("paths, methods", "unknown sid", "DELETE", "/api/sessions/00000000-0000-0000-0000-000000000000/", 404, auth=True),
    Case("paths, methods", "overlong UUID", "DELETE", "/api/sessions/" + "0" * 500 + "/", 404, auth=True),
    Case("paths, methods", "unknown API path", "GET", "/api/nothing-here/", 404),
    Case("paths, methods", "unknown well-known path", "GET", "/.well-known/openid-configuration-nope", 404),
    Case("paths, methods", "POST without trailing slash", "POST", "/api/token", 404, CRED),
    Case("paths, methods", "PUT on sign-in", "PUT", TOKEN, 405, CRED),
    Case("paths, methods", "DELETE on me", "DELETE", ME, 405, auth=True),
    Case("paths, methods", "POST on JWKS", "POST", "/.well-known/jwks.json", 405, {}),
    # -- other headers and cookies ------------------------------------------------------
    Case("headers, cookies", "foreign Host", "GET", "/api/ping/", 400, headers={"HTTP_HOST": "evil.example"}),
    Case("headers, cookies", "Host with a path", "POST", TOKEN, 400, CRED, headers={"HTTP_HOST": "localhost/../admin"}),
    Case("headers, cookies", "garbage refresh cookie without CSRF", "POST", REFRESH, 403, {}, headers={"HTTP_COOKIE": "refresh_token=garbage"}),
    Case("headers, cookies", "cookie transport on logout without CSRF", "POST", "/api/token/logout/", 403, {}, headers={"HTTP_COOKIE": "refresh_token=x", "HTTP_X_TOKEN_TRANSPORT": "cookie"}),
]  # fmt: skip


def _snapshot() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "login_sessions": LoginSession.objects.count(),
        "live_login_sessions": LoginSession.objects.filter(revoked_at__isnull=True).count(),
        "refresh_tokens": OutstandingToken.objects.count(),
        "blacklisted": OutstandingToken.objects.filter(blacklisted_at__isnull=False).count(),
        "signing_keys": SigningKey.objects.count(),
        "django_sessions": Session.objects.count(),
    }


def test_the_table_has_at_least_40_cases_in_named_groups():
    groups = Counter(case.group for case in CASES)
    assert len(CASES) >= 40
    assert len({(c.group, c.name) for c in CASES}) == len(CASES)
    print("\n".join(f"{group}: {count}" for group, count in groups.items()), f"\ntotal: {len(CASES)}")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
def test_hostile_request_gets_a_json_4xx_and_changes_nothing(case, debug, settings, user, api_client):
    settings.DEBUG = debug
    settings.LOGIN_RATE = "1000/min"
    extra: dict[str, Any] = dict(case.headers)
    if case.auth:
        access = obtain(api_client).json()["access"]
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {access}")
    before = _snapshot()

    response = Client().generic(case.method, case.path, case.raw_body(), content_type=case.content_type, **extra)

    assert response.status_code == case.status, response.content[:300]
    assert response["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["code"], str) and body["code"]
    assert "Traceback" not in response.content.decode("utf-8", "replace")
    assert _snapshot() == before


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_reshaped_errors_keep_cors_and_allow_headers(client, settings, debug):
    settings.DEBUG = debug
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    response = client.get("/api/nothing-here/", HTTP_ORIGIN="https://app.example")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    response = client.post("/.well-known/jwks.json", HTTP_ORIGIN="https://app.example")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET"
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
