"""The JSON error shape, `{"detail": ..., "code": ...}`, in one place.

Services raise `ServiceError` subclasses; DRF raises its own exceptions; the
database may fail. `api_exception_handler` turns all of them into the one
shape, the `handler404`/`handler500` views do the same for paths under /api/
that never reached DRF (and `handler500` answers pages that met a database
or cache outage with a 503 page), and config.middleware.ApiErrorMiddleware uses
`api_error_for_exception` and `api_error_for_status` for whatever is left
(Django's DEBUG pages, errors raised in middleware, oversized bodies).
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views import defaults
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .exceptions import ServiceError

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
# What a shared Redis cache raises when it cannot be reached. Sign-in counts
# its attempts there, and without the counters it fails closed: 503, like a
# database outage, rather than sign-ins with no limit.
CACHE_UNAVAILABLE_ERRORS = (RedisConnectionError, RedisTimeoutError)
# Everything that means "the service is briefly unavailable": 503 with Retry-After.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, *CACHE_UNAVAILABLE_ERRORS)


def _error(detail: Any, code: str, status_code: int, **extra: Any) -> Response:
    return Response({"detail": str(detail), "code": code, **extra}, status=status_code)


def _first_code(codes: Any) -> str:
    while isinstance(codes, (list, dict)):
        if not codes:
            return "invalid"
        codes = codes[0] if isinstance(codes, list) else next(iter(codes.values()))
    return str(codes) if codes else "invalid"


# One detail and code per status that can reach a client without a more
# specific message (used when the body Django made is not our JSON).
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request.", "bad_request"),
    401: ("Authentication credentials were not provided.", "not_authenticated"),
    403: ("Permission denied.", "permission_denied"),
    404: ("Not found.", "not_found"),
    405: ("Method not allowed.", "method_not_allowed"),
    406: ("Not acceptable.", "not_acceptable"),
    413: ("The request body is too large.", "request_too_large"),
    415: ("Unsupported media type.", "unsupported_media_type"),
    429: ("Too many requests.", "throttled"),
    500: ("Internal server error.", "server_error"),
    503: ("The service is temporarily unavailable; try again shortly.", "service_unavailable"),
}
DATABASE_UNAVAILABLE = STATUS_ERRORS[503][0]


def api_error_for_status(status_code: int) -> JsonResponse:
    """Return the JSON error of a bare status code."""
    detail, code = STATUS_ERRORS.get(status_code, ("Request failed.", "error" if status_code < 500 else "server_error"))
    response = JsonResponse({"detail": detail, "code": code}, status=status_code)
    if status_code == 503:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def api_error_for_exception(exc: BaseException) -> JsonResponse:
    """Return the JSON error of an exception that escaped the API views or came from middleware."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database error, answered 503: %s", exc)
        return api_error_for_status(503)
    if isinstance(exc, CACHE_UNAVAILABLE_ERRORS):
        logger.warning("cache unavailable: %s", exc)
        return api_error_for_status(503)
    if isinstance(exc, RequestDataTooBig):
        return api_error_for_status(413)
    if isinstance(exc, Http404):
        return api_error_for_status(404)
    if isinstance(exc, PermissionDenied):
        return api_error_for_status(403)
    if isinstance(exc, SuspiciousOperation):
        # Bad Host header, malformed cookie, too many fields: the client's fault.
        return api_error_for_status(400)
    logger.error("unhandled exception under the API", exc_info=exc)
    return api_error_for_status(500)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate every exception raised under DRF into the JSON error shape."""
    if isinstance(exc, ServiceError):
        return _error(exc.detail, exc.code, exc.status_code)
    if isinstance(exc, UNAVAILABLE_ERRORS):
        # OperationalError also covers deadlocks and serialization failures:
        # transient either way, so "retry shortly" is the right answer.
        logger.warning("%s error, answered 503: %s", _outage_kind(exc), exc)
        response = _error(DATABASE_UNAVAILABLE, "service_unavailable", status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, RequestDataTooBig):
        return _error(STATUS_ERRORS[413][0], STATUS_ERRORS[413][1], status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, UnicodeError):
        # Text the client sent that cannot be encoded where it must go (a
        # header beyond Latin-1 reaching simplejwt, for one). Real WSGI and
        # ASGI servers decode headers as Latin-1, so this is a crafted request.
        return _error("The request contains characters that cannot be processed.", "invalid", 400)
    if isinstance(exc, RecursionError):
        # json.loads gives up on nesting deeper than the interpreter's
        # recursion limit; that can only be hostile input, not a bug of ours.
        return _error("JSON is nested too deeply.", "parse_error", status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    handled = exception_handler(exc, context)
    if handled is None:
        if isinstance(exc, DatabaseError):
            # Integrity and data errors reaching here mean input got past
            # validation; say so without a traceback.
            logger.exception("database error in API view")
            return _error("The request could not be processed.", "invalid", status.HTTP_400_BAD_REQUEST)
        return None  # a real bug: Django's 500 handler answers with JSON below
    response = handled

    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail
        if isinstance(data, dict):
            fields = {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in data.items()}
            non_field = fields.pop("non_field_errors", None)
            detail = non_field[0] if non_field else "Invalid input."
            response.data = {"detail": detail, "code": _first_code(exc.get_codes()), "errors": fields}
        else:
            messages = [str(m) for m in (data if isinstance(data, list) else [data])]
            response.data = {"detail": messages[0] if messages else "Invalid input.", "code": "invalid"}
        return response

    data = response.data
    if isinstance(data, dict) and "detail" in data:
        code = data.get("code") or getattr(data["detail"], "code", None) or _first_code(exc.get_codes())  # type: ignore[attr-defined]
        response.data = {**data, "detail": str(data["detail"]), "code": str(code)}
    else:
        response.data = {"detail": str(data), "code": _first_code(getattr(exc, "get_codes", lambda: "error")())}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        # Round up: DRF truncates, and "Retry-After: 0" invites a retry storm.
        seconds = max(1, math.ceil(wait))
        response.data["retry_after"] = seconds
        response["Retry-After"] = str(seconds)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    # Django calls this inside its `except` block, so the error is at hand.
    # A page (sign-in, the admin) that met a database or cache outage gets
    # "try again shortly" with Retry-After, not "something went wrong".
    exc = sys.exc_info()[1]
    if isinstance(exc, UNAVAILABLE_ERRORS):
        logger.warning("%s unavailable for a page, answered 503: %s", _outage_kind(exc), exc)
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    return defaults.server_error(request)


def _outage_kind(exc: BaseException) -> str:
    return "database" if isinstance(exc, DatabaseError) else "cache"


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Permission denied.", "code": "permission_denied"}, status=403)
    return defaults.permission_denied(request, exception)
