"""Two middlewares: JSON errors for every path under /api/, and a Content-Security-Policy.

`ApiErrorMiddleware` is the last word on errors of the API. DRF's exception
handler (config.errors) shapes what views raise; this catches the rest:
Django's DEBUG pages (the technical 404 bypasses `handler404`), plain Django
views such as the JWKS one (a bare 405), exceptions raised by other
middleware (a session store whose database just went away), bodies over
`DATA_UPLOAD_MAX_MEMORY_SIZE` (DRF reads the request stream directly, so
Django's own limit never fires for it) and POSTs to a path without its
trailing slash (CommonMiddleware would raise in DEBUG or redirect, dropping
the body). It sits right after SecurityMiddleware so that its answers still
get the security headers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver, get_urlconf

from .errors import api_error_for_exception, api_error_for_status

API_PREFIXES = ("/api/", "/.well-known/")
JSON_CONTENT_TYPES = ("application/json", "application/problem+json")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers of the original error response a client still needs.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")
# Where Django handled an exception itself, the exception is kept here for
# ApiErrorMiddleware to read.
_EXCEPTION_ATTR = "_api_error_exception"


def is_api_path(path: str) -> bool:
    """Say whether a path answers in JSON only."""
    return path.startswith(API_PREFIXES)


@receiver(got_request_exception, dispatch_uid="config.middleware.remember_exception")
def _remember_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Sent from inside Django's `except` block, so sys.exc_info() is the error.
    if request is not None and is_api_path(request.path):
        setattr(request, _EXCEPTION_ATTR, sys.exc_info()[1])


class ApiErrorMiddleware:
    """Answer every error under /api/ and /.well-known/ with the JSON error shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        refused = self._refuse_early(request)
        if refused is not None:
            return refused
        return self._json_error(request, self.get_response(request))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Shape an exception that a non-DRF view under /api/ raised."""
        if not is_api_path(request.path):
            return None
        response = api_error_for_exception(exception)
        if response.status_code == 500:
            # A real bug: tell error reporters (and the test client) as Django would.
            got_request_exception.send(sender=None, request=request)
        return response

    def _refuse_early(self, request: HttpRequest) -> HttpResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return api_error_for_status(413)
        if request.method not in SAFE_METHODS and not request.path_info.endswith("/"):
            try:
                get_resolver(get_urlconf()).resolve(request.path_info)
            except Resolver404:
                return api_error_for_status(404)
        return None

    def _json_error(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code < 400:
            return response
        content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in JSON_CONTENT_TYPES and response.status_code != 500:
            return response
        exception = getattr(request, _EXCEPTION_ATTR, None)
        shaped = (
            api_error_for_exception(exception) if exception is not None else api_error_for_status(response.status_code)
        )
        for header, value in response.items():
            # CORS headers too, or a web app on another origin cannot read the error.
            if (header in KEPT_HEADERS or header.lower().startswith("access-control-")) and header not in shaped:
                shaped[header] = value
        for cookie in response.cookies.values():
            shaped.cookies[cookie.key] = cookie
        return shaped


class ContentSecurityPolicyMiddleware:
    """Send `CONTENT_SECURITY_POLICY` with every HTML page.

    The pages have no inline scripts, so the policy allows scripts from this
    origin only. drf-spectacular's Swagger UI page boots with an inline
    script, so its path gets `CONTENT_SECURITY_POLICY_DOCS` instead.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            docs = request.path.startswith("/api/docs/")
            policy = settings.CONTENT_SECURITY_POLICY_DOCS if docs else settings.CONTENT_SECURITY_POLICY
            response["Content-Security-Policy"] = policy
        return response
