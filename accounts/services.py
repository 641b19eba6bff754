"""Account writes: sign-up and password change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tokens import services as token_services
from tokens.audit import auth_event_record
from tokens.models import AuthEvent, LoginSession

from .models import User, email_normalize


class EmailTaken(ValidationError):
    pass


def user_create(*, email: str, password: str, name: str = "") -> User:
    """Create an account after Django's password validators accept the password."""
    email = email_normalize(email)
    candidate = User(email=email, name=name)
    password_validation.validate_password(password, user=candidate)
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, name=name)
            auth_event_record(kind=AuthEvent.Kind.SIGNED_UP, user_id=user.pk)
            return user
    except IntegrityError as e:
        raise EmailTaken({"email": ["An account with this email already exists."]}, code="unique") from e


def user_password_change(*, user: Any, new_password: str, keep_sid: str | None) -> int:
    """Set a new password and end every other login session; return how many ended."""
    password_validation.validate_password(new_password, user=user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        auth_event_record(kind=AuthEvent.Kind.PASSWORD_CHANGED, user_id=user.pk, sid=keep_sid)
        return token_services.login_sessions_revoke_for_user(
            user_id=user.pk, reason=LoginSession.RevokeReason.PASSWORD_CHANGED, keep_sid=keep_sid
        )
