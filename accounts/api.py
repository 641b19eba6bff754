"""Account endpoints of the API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.authentication import request_sid

from . import services
from .browser import browser_session_keep
from .serializers import PasswordChangeSerializer, SignupSerializer, UserSerializer


def _validation_error(error: DjangoValidationError, field: str) -> serializers.ValidationError:
    if hasattr(error, "error_dict"):
        return serializers.ValidationError(serializers.as_serializer_error(error))
    return serializers.ValidationError({field: list(error.messages)})


class MeView(APIView):
    """Return the signed-in user."""

    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)


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
