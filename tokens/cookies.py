"""The refresh-token cookie of the browser transport, and the checks it needs.

A web app on another origin keeps the access token in memory and lets the
browser hold the refresh token in an HttpOnly cookie scoped to /api/token/,
so that only refresh and logout ever receive it. Because the browser sends
that cookie by itself, those two endpoints then demand what a forged
cross-site request cannot produce: Django's CSRF cookie echoed in the
X-CSRFToken header, and an Origin we allow.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token

from . import conf
from .exceptions import CsrfFailed

TRANSPORT_HEADER = "HTTP_X_TOKEN_TRANSPORT"
REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_PATH = "/api/token/"


def wants_cookie(request: HttpRequest) -> bool:
    return request.META.get(TRANSPORT_HEADER, "").strip().lower() == "cookie"


def refresh_cookie(request: HttpRequest) -> str | None:
    value = request.COOKIES.get(REFRESH_COOKIE)
    return value or None


def refresh_cookie_set(response: HttpResponse, *, token: str, max_age: int) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=max_age,
        path=REFRESH_COOKIE_PATH,
        secure=conf.cookie_secure(),
        httponly=True,
        samesite=conf.cookie_samesite(),  # type: ignore[arg-type]
    )


def refresh_cookie_delete(response: HttpResponse) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        samesite=conf.cookie_samesite(),  # type: ignore[arg-type]
    )


def csrf_token_issue(request: HttpRequest) -> str:
    """Set Django's CSRF cookie on the response and return the token for the body."""
    return get_token(request)


def _allowed_origin(request: HttpRequest, origin: str) -> bool:
    allowed = set(settings.CORS_ALLOWED_ORIGINS) | set(settings.CSRF_TRUSTED_ORIGINS)
    scheme = "https" if request.is_secure() else "http"
    allowed.add(f"{scheme}://{request.get_host()}")
    return origin in allowed


def cookie_request_check(request: HttpRequest) -> None:
    """Refuse a cookie-carried refresh unless CSRF token and Origin are right."""
    origin = request.META.get("HTTP_ORIGIN")
    if not origin or not _allowed_origin(request, origin):
        raise CsrfFailed("Origin missing or not allowed.")
    # Django then checks the Origin again (against CSRF_TRUSTED_ORIGINS, which
    # defaults to CORS_ALLOWED_ORIGINS) and the X-CSRFToken header against
    # the CSRF cookie.
    check = CsrfViewMiddleware(lambda r: HttpResponse())
    check.process_request(request)
    reason: Any = check.process_view(request, lambda r: HttpResponse(), (), {})
    if reason is not None:
        raise CsrfFailed()
