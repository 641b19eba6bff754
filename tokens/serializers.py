"""Input validation and output shapes of the token API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import LoginSession

# Generous on purpose: a token over tokens.conf.MAX_TOKEN_BYTES gets the
# token backend's 401 like any other bad token, not a 400 about its length.
TOKEN_MAX_LENGTH = 65536


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not know (a typo or a probe, either way)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]}, code="invalid")
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name[:64]: ["Unknown field."] for name in unknown[:10]}, code="unknown_field"
            )
        return super().to_internal_value(data)


class CredentialsSerializer(StrictSerializer):
    email = serializers.CharField(max_length=254, trim_whitespace=True)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=TOKEN_MAX_LENGTH, required=False)


class VerifySerializer(StrictSerializer):
    token = serializers.CharField(max_length=TOKEN_MAX_LENGTH)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField(required=False)
    access_expires_at = serializers.DateTimeField()
    refresh_expires_at = serializers.DateTimeField()
    csrf_token = serializers.CharField(required=False)


class LoginSessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = LoginSession
        fields = ["sid", "transport", "created_at", "last_used_at", "ip", "user_agent", "current"]

    def get_current(self, obj: LoginSession) -> bool:
        return str(obj.sid) == self.context.get("current_sid")
