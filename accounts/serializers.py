from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tokens.serializers import StrictSerializer

from .models import User


class UserSerializer(serializers.ModelSerializer):
    admin = serializers.BooleanField(source="is_staff", read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "admin", "date_joined"]
        read_only_fields = fields


_DATE_TIME = serializers.DateTimeField(read_only=True)


def user_representation(user: Any) -> dict[str, Any]:
    """Return what UserSerializer(user).data returns, without building a ModelSerializer.

    GET /api/me/ answers this on every call; a ModelSerializer introspects the
    model and builds its fields on each instantiation, which cost more than
    the rest of the request's Python. A test keeps the two identical.
    """
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "admin": bool(user.is_staff),
        "date_joined": _DATE_TIME.to_representation(user.date_joined),
    }


class SignupSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class PasswordChangeSerializer(StrictSerializer):
    old_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)

    def validate_old_password(self, value: str) -> str:
        user: Any = self.context["user"]
        if not user.check_password(value):
            raise serializers.ValidationError("The current password is not correct.", code="wrong_password")
        return value
