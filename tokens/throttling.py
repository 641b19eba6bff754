"""Sign-in throttling: `LOGIN_RATE` attempts per client address and per account.

Why DRF's throttling and not django-axes: the contract asks for a *rate*
(`LOGIN_RATE`, "10/min") counted in the Django cache so that every worker and
node counts together through `CACHE_URL`. DRF's `SimpleRateThrottle` is
exactly that, is already a dependency, is what `/api/token/` runs through
anyway, and works on a plain Django request for the HTML and admin login
pages. django-axes is a lockout library: failures counted in its own tables
(or its cache handler), its own backend and middleware, its own lockout
pages; it would be a second mechanism next to DRF's for a smaller result.

Three choices differ from DRF's defaults, each on purpose:
- The client address is `REMOTE_ADDR` only. DRF's `get_ident` trusts
  `X-Forwarded-For` when `NUM_PROXIES` is unset, so a client could name a
  fresh address on every attempt. A reverse proxy must set `REMOTE_ADDR`
  (see tokens.requests.client_info). IPv6 addresses count per /64, the block
  one subscriber normally holds.
- The account is the typed email, normalised and hashed, so that an unknown
  address is counted exactly like a real one (the answer reveals nothing) and
  no email sits in a cache key.
- Time comes from tokens.clock, so tests move it instead of sleeping.

Every attempt counts, successful or not: the rate bounds guessing, and a
person typing a password never needs ten tries a minute. The first attempt over
the rate in each rate period is recorded as an `AuthEvent`
(`sign_in_throttled`) per address or account, not one row per refused
request, so a flood cannot flood the audit table too.

Known limit: `SimpleRateThrottle` reads, appends and writes its history
without a lock, so requests arriving at the same instant can overshoot the
rate by the number in flight together. That bounds the overshoot by the
attacker's concurrency within a few milliseconds, while each attempt costs an
Argon2 hash; for a rate limit (not a lockout) that is an acceptable trade.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import Context, Engine
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from config.errors import CACHE_UNAVAILABLE_ERRORS

from . import clock
from .audit import auth_event_record
from .models import AuthEvent
from .requests import client_info

THROTTLED_MESSAGE = "Too many sign-in attempts. Try again in {seconds} seconds."
UNAVAILABLE_MESSAGE = "Signing in is unavailable for a moment. Try again in {seconds} seconds."
CACHE_UNAVAILABLE_RETRY_AFTER = 5

logger = logging.getLogger(__name__)


def _clock_seconds() -> float:
    return clock.now().timestamp()


def client_address_key(request: Any) -> str:
    """Return the throttling identity of the client address (IPv6 grouped per /64)."""
    raw = client_info(request).ip or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def typed_email(request: Any) -> str | None:
    """Return the email a sign-in attempt names: `email` in a JSON body, `username` in a form."""
    if isinstance(request, Request):
        data = request.data
        value = data.get("email") if isinstance(data, dict) else None
    else:
        value = request.POST.get("username") or request.POST.get("email")
    if not isinstance(value, str) or not value.strip():
        return None
    return value


class _SignInThrottle(SimpleRateThrottle):
    """Count POSTs to a sign-in endpoint under LOGIN_RATE; subclasses say what is counted."""

    timer = staticmethod(_clock_seconds)
    # Set by SimpleRateThrottle.__init__ and allow_request (untyped there).
    duration: int
    now: float
    key: str

    def get_rate(self) -> str:
        return str(settings.LOGIN_RATE)

    def ident(self, request: Any) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.method != "POST":
            return None
        ident = self.ident(request)
        if ident is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        if super().allow_request(request, view):
            return True
        self._refusal_record(request)
        return False

    def retry_after(self) -> int:
        """Whole seconds until the next attempt is allowed (never 0, so clients do wait)."""
        return max(1, math.ceil(self.wait() or 1))

    def _refusal_record(self, request: Any) -> None:
        # The first refusal of each rate period is worth a row; the rest are
        # the same story. The period comes from the clock, like the counting.
        period = int(self.now // self.duration)
        if not self.cache.add(f"{self.key}_recorded_{period}", 1, timeout=self.duration):
            return
        client = client_info(request)
        email = typed_email(request) or ""
        auth_event_record(
            kind=AuthEvent.Kind.SIGN_IN_THROTTLED,
            email=email,
            ip=client.ip,
            user_agent=client.user_agent,
            data={"scope": self.scope, "rate": self.rate},
        )


class SignInAddressThrottle(_SignInThrottle):
    """LOGIN_RATE sign-in attempts per client address."""

    scope = "sign_in_address"

    def ident(self, request: Any) -> str | None:
        return client_address_key(request)


class SignInAccountThrottle(_SignInThrottle):
    """LOGIN_RATE sign-in attempts per account, whether or not the account exists."""

    scope = "sign_in_account"

    def ident(self, request: Any) -> str | None:
        email = typed_email(request)
        if email is None:
            return None
        return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:40]


SIGN_IN_THROTTLES: tuple[type[_SignInThrottle], ...] = (SignInAddressThrottle, SignInAccountThrottle)


@dataclass(frozen=True)
class SignInRefusal:
    """Why a sign-in page refuses an attempt, for how long, and with which status."""

    wait: int
    message: str
    status: int = 429


def sign_in_attempt_refusal(request: HttpRequest) -> SignInRefusal | None:
    """Count one sign-in attempt of a Django request; say why it is refused, if it is.

    With the shared cache unreachable the attempt cannot be counted, so it is
    refused (fail closed, 503) rather than let through unlimited; the API does
    the same through config.errors.
    """
    waits = []
    try:
        for throttle_class in SIGN_IN_THROTTLES:
            throttle = throttle_class()
            if not throttle.allow_request(request, None):
                waits.append(throttle.retry_after())
    except CACHE_UNAVAILABLE_ERRORS:
        logger.warning("sign-in refused: the cache that counts attempts is unreachable")
        wait = CACHE_UNAVAILABLE_RETRY_AFTER
        return SignInRefusal(wait, UNAVAILABLE_MESSAGE.format(seconds=wait), status=503)
    if not waits:
        return None
    return SignInRefusal(max(waits), THROTTLED_MESSAGE.format(seconds=max(waits)))


_THROTTLED_PAGE = Engine().from_string(
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>Sign-in refused</title></head>"
    '<body><main><h1>Sign-in refused</h1><p role="alert">{{ message }}</p>'
    '<p><a href="{{ path }}">Back to sign in</a></p></main></body></html>\n'
)


def throttled_page(request: HttpRequest, refusal: SignInRefusal) -> HttpResponse:
    """Answer a refused sign-in page with its status, Retry-After and the message."""
    html = _THROTTLED_PAGE.render(Context({"message": refusal.message, "path": request.path}))
    response = HttpResponse(html, status=refusal.status, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(refusal.wait)
    return response


def sign_in_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a sign-in view (the admin's) so that POSTs over LOGIN_RATE get a 429 page."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            refusal = sign_in_attempt_refusal(request)
            if refusal is not None:
                return throttled_page(request, refusal)
        return view(request, *args, **kwargs)

    return wrapped


class SignInThrottleMixin:
    """For Django's LoginView: POSTs over LOGIN_RATE get the form back with the message and 429.

    The form shown is unbound, so the throttled attempt never reaches
    `authenticate()` (no hash, no failed-sign-in event); the typed email is
    kept as its initial value.
    """

    request: HttpRequest

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = sign_in_attempt_refusal(request)
        if refusal is None:
            return super().post(request, *args, **kwargs)  # type: ignore[misc]
        view: Any = self
        form = view.get_form_class()(request, initial={"username": request.POST.get("username", "")[:254]})
        form.full_clean()  # unbound: validates nothing, just starts an empty error list
        form.cleaned_data = {}
        form.add_error(None, refusal.message)
        response = view.render_to_response(view.get_context_data(form=form), status=refusal.status)
        response["Retry-After"] = str(refusal.wait)
        return response
