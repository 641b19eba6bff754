"""Read-only queries of the tokens app."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import LoginSession, SigningKey


def login_session_with_user(*, sid: str) -> LoginSession | None:
    """Return a live login session joined with its user, in one query, or None."""
    # A primary-key lookup: `.get()`, not `.first()`, which would add an ORDER BY.
    try:
        return LoginSession.objects.select_related("user").get(sid=sid, revoked_at__isnull=True)
    except LoginSession.DoesNotExist:
        return None


def login_sessions_live(*, user_id: Any) -> QuerySet[LoginSession]:
    """Return a user's live login sessions, most recently used first."""
    return LoginSession.objects.filter(user_id=user_id, revoked_at__isnull=True).order_by("-last_used_at")


def signing_keys_all() -> QuerySet[SigningKey]:
    """Return every signing key, newest first, without private material."""
    return SigningKey.objects.defer("private_key_encrypted").order_by("-created_at")
