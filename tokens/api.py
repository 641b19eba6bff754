"""The token API: thin views that validate, call one service, shape the response."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.exceptions import ServiceError

from . import conf, cookies, selectors, services
from .authentication import LoginSessionSessionAuthentication, request_sid
from .exceptions import SessionRevoked, TokenInvalid
from .keyring import keyring
from .models import LoginSession
from .requests import client_info
from .serializers import (
    CredentialsSerializer,
    LoginSessionSerializer,
    RefreshSerializer,
    TokenPairSerializer,
    VerifySerializer,
)
from .throttling import SignInAccountThrottle, SignInAddressThrottle
from .tokens import AccessToken, RefreshToken


# --- OpenAPI description (drf-spectacular) -----------------------------------
# Our authentication classes subclass simplejwt's and DRF's; these tell the
# schema generator they are the same bearer and session-cookie schemes.
class LoginSessionJWTScheme(SimpleJWTScheme):
    target_class = "tokens.authentication.LoginSessionJWTAuthentication"


class LoginSessionCookieScheme(SessionScheme):
    target_class = "tokens.authentication.LoginSessionSessionAuthentication"


# The error shape of config/errors.py, described once and shared by every view.
ERROR_SCHEMA = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "retry_after": serializers.IntegerField(required=False, help_text="Seconds to wait (429 only)."),
    },
)
VALIDATION_ERROR_SCHEMA = inline_serializer(
    name="ValidationError",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), help_text="Messages by field name."
        ),
    },
)
_ERROR_MEANINGS = {
    400: "Malformed input; `errors` maps each field (unknown fields too) to its messages.",
    401: "Bad credentials or token. `code`: `invalid_credentials`, `not_authenticated`, `token_not_valid`, "
    "`token_reused` (the whole login session is now revoked), `session_revoked`, `user_inactive`.",
    403: "`csrf_failed`: a cookie-carried request without a matching X-CSRFToken header or allowed Origin.",
    404: "`not_found`: no such login session among the caller's.",
    429: "`throttled`: too many attempts; wait `Retry-After` seconds.",
    503: "`service_unavailable` or `signing_key_unavailable`: retry after `Retry-After` seconds.",
}


def openapi_errors(*status_codes: int) -> dict[int | str, Any]:
    """Describe an endpoint's JSON error answers for the schema."""
    return {
        code: OpenApiResponse(
            VALIDATION_ERROR_SCHEMA if code == 400 else ERROR_SCHEMA, description=_ERROR_MEANINGS[code]
        )
        for code in status_codes
    }


TRANSPORT_PARAMETER = OpenApiParameter(
    "X-Token-Transport",
    str,
    OpenApiParameter.HEADER,
    required=False,
    enum=["cookie"],
    description="`cookie`: the refresh token goes into an HttpOnly cookie (Path=/api/token/) instead of the body, "
    "and the body carries `csrf_token` for the X-CSRFToken header of later refresh and logout calls.",
)
PAIR_RESPONSE = OpenApiResponse(
    TokenPairSerializer,
    description="A token pair. With `X-Token-Transport: cookie`, `refresh` is absent (it is in the cookie) "
    "and `csrf_token` is present.",
)
COOKIE_DESCRIPTION = (
    " With no `refresh` in the body, the refresh cookie is used; that needs the CSRF cookie echoed in "
    "X-CSRFToken and an allowed Origin."
)


class InvalidCredentials(ServiceError):
    status_code = 401
    code = "invalid_credentials"
    # One message for an unknown email, a wrong password and an inactive
    # account, so the answer tells an attacker nothing.
    detail = "No active account found with the given credentials."


def _pair_response(request: Request, pair: services.TokenPair, *, status_code: int = 200) -> Response:
    body: dict[str, Any] = {
        "access": pair.access,
        "refresh": pair.refresh,
        "access_expires_at": pair.access_expires_at.isoformat(),
        "refresh_expires_at": pair.refresh_expires_at.isoformat(),
    }
    if not cookies.wants_cookie(request._request):
        return Response(body, status=status_code)
    del body["refresh"]
    body["csrf_token"] = cookies.csrf_token_issue(request._request)
    response = Response(body, status=status_code)
    max_age = int((pair.refresh_expires_at - pair.access_expires_at).total_seconds()) + int(
        conf.access_lifetime().total_seconds()
    )
    cookies.refresh_cookie_set(response, token=pair.refresh, max_age=max_age)
    return response


def _refresh_token_from(request: Request) -> tuple[str, bool]:
    """Return the presented refresh token and whether it came from the cookie."""
    serializer = RefreshSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    body_token = serializer.validated_data.get("refresh")
    if body_token:
        return body_token, False
    cookie_token = cookies.refresh_cookie(request._request)
    if cookie_token:
        cookies.cookie_request_check(request._request)
        return cookie_token, True
    raise TokenInvalid("No refresh token was given.", code="token_not_valid")


@extend_schema(
    tags=["tokens"],
    summary="Sign in: email and password for a token pair",
    request=CredentialsSerializer,
    parameters=[TRANSPORT_PARAMETER],
    responses={200: PAIR_RESPONSE, **openapi_errors(400, 401, 429, 503)},
)
class TokenObtainView(APIView):
    """Sign in with email and password; start a login session; return a token pair."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [SignInAddressThrottle, SignInAccountThrottle]

    def post(self, request: Request) -> Response:
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise InvalidCredentials()
        pair = services.token_pair_obtain(user=user, client=client_info(request))
        return _pair_response(request, pair)


@extend_schema(
    tags=["tokens"],
    summary="Rotate a refresh token into a new pair",
    description="Presenting an already rotated refresh token is reuse: the login session is revoked (401 "
    "`token_reused`)." + COOKIE_DESCRIPTION,
    request=RefreshSerializer,
    parameters=[TRANSPORT_PARAMETER],
    responses={200: PAIR_RESPONSE, **openapi_errors(400, 401, 403, 503)},
)
class TokenRefreshView(APIView):
    """Rotate a refresh token (from the body, or the cookie with CSRF) into a new pair."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        raw, from_cookie = _refresh_token_from(request)
        try:
            pair = services.refresh_token_rotate(raw=raw, client=client_info(request))
        except TokenInvalid as e:
            response = Response({"detail": e.detail, "code": e.code}, status=e.status_code)
            if from_cookie:
                cookies.refresh_cookie_delete(response)
            return response
        if from_cookie:
            request._request.META[cookies.TRANSPORT_HEADER] = "cookie"
        return _pair_response(request, pair)


@extend_schema(
    tags=["tokens"],
    summary="Check a token and its login session",
    request=VerifySerializer,
    responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Valid: `{}`."), **openapi_errors(400, 401, 503)},
)
class TokenVerifyView(APIView):
    """Answer 200 for a valid access or refresh token of a live login session, else 401."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        serializer = VerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw = serializer.validated_data["token"]
        try:
            token: AccessToken | RefreshToken = AccessToken(raw)
        except TokenInvalid:
            token = RefreshToken(raw)
        login_session = selectors.login_session_with_user(sid=token.sid)
        if login_session is None or str(login_session.user_id) != token["sub"] or not login_session.user.is_active:
            raise SessionRevoked()
        return Response({})


@extend_schema(
    tags=["tokens"],
    summary="Trade a signed-in browser session for a pair of the same login session",
    description="Needs the Django session cookie and Django's CSRF check (X-CSRFToken).",
    request=None,
    parameters=[TRANSPORT_PARAMETER],
    responses={200: PAIR_RESPONSE, **openapi_errors(401, 403, 503)},
)
class TokenFromSessionView(APIView):
    """Give a browser signed in with a Django session a pair bound to the same login session."""

    authentication_classes = [LoginSessionSessionAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        sid = request_sid(request)
        if not sid:
            raise SessionRevoked()
        pair = services.token_pair_for_browser_session(sid=sid, user=request.user, client=client_info(request))
        return _pair_response(request, pair)


@extend_schema(
    tags=["tokens"],
    summary="Sign out: revoke the login session (idempotent)",
    description="Revokes the login session of the refresh token in the body, else of the refresh cookie, else "
    "of the caller." + COOKIE_DESCRIPTION,
    request=RefreshSerializer,
    responses={204: OpenApiResponse(description="Signed out."), **openapi_errors(400, 401, 403, 503)},
)
class LogoutView(APIView):
    """End the login session of a refresh token (body or cookie) or of the calling session."""

    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        raw: str | None = None
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw = serializer.validated_data.get("refresh")
        from_cookie = False
        if not raw and cookies.refresh_cookie(request._request):
            cookies.cookie_request_check(request._request)
            raw = cookies.refresh_cookie(request._request)
            from_cookie = True
        if raw:
            try:
                services.refresh_token_logout(raw=raw)
            except TokenInvalid as e:
                if not from_cookie:
                    raise
                # A cookie that names no session is useless: expire it too.
                response = Response({"detail": e.detail, "code": e.code}, status=e.status_code)
                cookies.refresh_cookie_delete(response)
                return response
        elif request.user and request.user.is_authenticated:
            sid = request_sid(request)
            if sid:
                services.login_session_revoke(sid=sid, reason=LoginSession.RevokeReason.LOGOUT)
        else:
            raise TokenInvalid("No refresh token was given.")
        response = Response(status=status.HTTP_204_NO_CONTENT)
        cookies.refresh_cookie_delete(response)
        return response


@extend_schema(
    tags=["tokens"],
    summary="Sign out everywhere: revoke every login session of the caller",
    request=None,
    responses={
        200: inline_serializer("LoggedOutEverywhere", {"revoked": serializers.IntegerField()}),
        **openapi_errors(401, 403, 503),
    },
)
class LogoutAllView(APIView):
    """End every login session of the calling user."""

    def post(self, request: Request) -> Response:
        count = services.login_sessions_revoke_for_user(
            user_id=request.user.pk, reason=LoginSession.RevokeReason.LOGOUT_ALL
        )
        response = Response({"revoked": count})
        cookies.refresh_cookie_delete(response)
        return response


@extend_schema(
    tags=["sessions"],
    summary="List the caller's live login sessions",
    responses={200: LoginSessionSerializer(many=True), **openapi_errors(401, 503)},
)
class SessionListView(APIView):
    """List the calling user's live login sessions; `current` marks the caller's own."""

    def get(self, request: Request) -> Response:
        sessions = selectors.login_sessions_live(user_id=request.user.pk)
        data = LoginSessionSerializer(sessions, many=True, context={"current_sid": request_sid(request)}).data
        return Response(data)


@extend_schema(
    tags=["sessions"],
    summary="Revoke one of the caller's login sessions",
    responses={204: OpenApiResponse(description="Revoked."), **openapi_errors(401, 403, 404, 503)},
)
class SessionDetailView(APIView):
    """Revoke one of the calling user's login sessions."""

    def delete(self, request: Request, sid: Any) -> Response:
        # Another user's sid, an unknown one and an ended one all look alike.
        if not services.login_session_revoke(
            sid=sid, reason=LoginSession.RevokeReason.USER_REVOKED, user_id=request.user.pk
        ):
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)


@require_GET
def jwks_view(request: HttpRequest) -> HttpResponse:
    """Publish the next, current and previous public keys."""
    response = HttpResponse(keyring.jwks_document(), content_type="application/json")
    response["Cache-Control"] = f"public, max-age={conf.jwks_max_age()}"
    return response
