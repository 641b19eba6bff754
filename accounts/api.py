"""Account endpoints of the API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.api import openapi_errors
from tokens.authentication import request_sid

from . import services
from .browser import browser_session_keep
from .serializers import PasswordChangeSerializer, SignupSerializer, UserSerializer, user_representation


def _validation_error(error: DjangoValidationError, field: str) -> serializers.ValidationError:
    if hasattr(error, "error_dict"):
        return serializers.ValidationError(serializers.as_serializer_error(error))
    return serializers.ValidationError({field: list(error.messages)})


@extend_schema(
    tags=["accounts"],
    summary="The signed-in user",
    responses={200: UserSerializer, **openapi_errors(401, 503)},
)
class MeView(APIView):
    """Return the signed-in user."""

    def get(self, request: Request) -> Response:
        return Response(user_representation(request.user))


@extend_schema(
    tags=["accounts"],
    summary="Create an account",
    request=SignupSerializer,
    responses={201: UserSerializer, **openapi_errors(400, 429, 503)},
)
class SignupView(APIView):
    """Create an account."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        serializer = SignupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = services.user_create(**serializer.validated_data)
        except DjangoValidationError as e:
            raise _validation_error(e, "password") from e
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["accounts"],
    summary="Change the password; end every other login session",
    request=PasswordChangeSerializer,
    responses={
        200: inline_serializer("PasswordChanged", {"revoked_sessions": serializers.IntegerField()}),
        **openapi_errors(400, 401, 403, 503),
    },
)
class PasswordChangeView(APIView):
    """Change the password and end every other login session of the user."""

    def post(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data, context={"user": request.user})
        serializer.is_valid(raise_exception=True)
        try:
            ended = services.user_password_change(
                user=request.user,
                new_password=serializer.validated_data["new_password"],
                keep_sid=request_sid(request),
            )
        except DjangoValidationError as e:
            raise _validation_error(e, "new_password") from e
        if request.auth is None:
            browser_session_keep(request._request, request.user)
        return Response({"revoked_sessions": ended})
