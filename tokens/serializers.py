"""Input validation and output shapes of the token API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

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


class TokenField(serializers.CharField):
    """A compact JWT: DRF's per-character surrogate scan only for strings that are not ASCII.

    That scan walks the ~700 characters of every refresh token in Python; an
    ASCII string cannot hold a surrogate, and `str.isascii` tells in C.
    A string that is not ASCII is scanned as usual (and then refused by the
    token backend if it gets that far).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitSurrogateCharactersValidator)]

    def run_validators(self, value: Any) -> None:
        if isinstance(value, str) and not value.isascii():
            ProhibitSurrogateCharactersValidator()(value)
        super().run_validators(value)


class CredentialsSerializer(StrictSerializer):
    email = serializers.CharField(max_length=254, trim_whitespace=True)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh = TokenField(max_length=TOKEN_MAX_LENGTH, required=False)


class VerifySerializer(StrictSerializer):
    token = TokenField(max_length=TOKEN_MAX_LENGTH)


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
