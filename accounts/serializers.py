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
