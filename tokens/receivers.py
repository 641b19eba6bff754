"""Signal receivers: browser sign-in and sign-out, account deactivation and deletion."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate, post_save, pre_delete
from django.dispatch import receiver
from django.http import HttpRequest

from . import services
from .audit import auth_event_record
from .authentication import SESSION_SID_KEY
from .models import AuthEvent, LoginSession
from .requests import client_info


@receiver(user_logged_in, dispatch_uid="tokens.browser_sign_in")
def browser_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Start a login session for a Django-session sign-in (pages, admin)."""
    if request is None or not hasattr(request, "session"):
        return
    if not request.session.session_key:
        request.session.save()
    login_session = services.login_session_create(
        user=user,
        transport=LoginSession.Transport.SESSION,
        client=client_info(request),
        session_key=request.session.session_key or "",
    )
    request.session[SESSION_SID_KEY] = str(login_session.sid)
    client = client_info(request)
    auth_event_record(
        kind=AuthEvent.Kind.SIGN_IN,
        user_id=user.pk,
        sid=login_session.sid,
        ip=client.ip,
        user_agent=client.user_agent,
        data={"transport": LoginSession.Transport.SESSION},
    )


@receiver(user_login_failed, dispatch_uid="tokens.sign_in_failed")
def sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Record a failed sign-in: the address typed, never the password."""
    typed = credentials.get("email") or credentials.get("username") or ""
    client = client_info(request) if request is not None else None
    auth_event_record(
        kind=AuthEvent.Kind.SIGN_IN_FAILED,
        email=typed if isinstance(typed, str) else "",
        ip=client.ip if client else None,
        user_agent=client.user_agent if client else "",
    )


@receiver(user_logged_out, dispatch_uid="tokens.browser_sign_out")
def browser_sign_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """End the login session of a browser that signs out."""
    if request is None or not hasattr(request, "session"):
        return
    sid = request.session.get(SESSION_SID_KEY)
    if sid:
        services.login_session_revoke(sid=sid, reason=LoginSession.RevokeReason.LOGOUT)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="tokens.user_deactivated")
def user_deactivated(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """End every login session of an account that was just deactivated."""
    if not created and not instance.is_active:
        services.login_sessions_revoke_for_user(user_id=instance.pk, reason=LoginSession.RevokeReason.USER_DEACTIVATED)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="tokens.user_deleted")
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """End the login sessions (and their Django sessions) of an account being deleted."""
    services.login_sessions_revoke_for_user(user_id=instance.pk, reason=LoginSession.RevokeReason.USER_DEACTIVATED)


@receiver(post_migrate, dispatch_uid="tokens.first_signing_key")
def first_signing_key(sender: Any, app_config: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Make the first signing keys when `migrate` creates the tables, so a fresh install can sign at once."""
    if app_config is None or app_config.name != "tokens" or kwargs.get("plan") == []:
        return
    from django.db import connections

    from .signing_keys import signing_key_bootstrap

    if "tokens_signingkey" in connections[using].introspection.table_names():
        signing_key_bootstrap()
