"""Signing keys, login sessions and the refresh-token families that hang off them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class SigningKey(models.Model):
    """A key pair that signs or verifies tokens; the private half is Fernet-encrypted."""

    class State(models.TextChoices):
        NEXT = "next", "next (published, not signing yet)"
        CURRENT = "current", "current (signs new tokens)"
        PREVIOUS = "previous", "previous (verifies until its tokens expire)"
        RETIRED = "retired", "retired"
        REVOKED = "revoked", "revoked (compromised)"

    # States whose public key is published and whose signatures are accepted.
    VERIFYING_STATES = (State.NEXT, State.CURRENT, State.PREVIOUS)

    kid = models.CharField("key id", max_length=64, unique=True, help_text="RFC 7638 SHA-256 thumbprint.")
    algorithm = models.CharField(max_length=8)
    public_key = models.TextField("public key (PEM)")
    private_key_encrypted = models.TextField(editable=False)
    state = models.CharField(max_length=8, choices=State.choices)
    created_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When it became current.")
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text="When it stopped signing (became previous, retired or revoked)."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=Q(state="current"), name="signing_key_one_current"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="next"), name="signing_key_one_next"),
            models.CheckConstraint(
                condition=Q(state__in=["next", "current", "previous", "retired", "revoked"]),
                name="signing_key_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm}, {self.state})"


class LoginSession(models.Model):
    """One act of signing in on one device, carried by a Django session, tokens or both."""

    class Transport(models.TextChoices):
        SESSION = "session", "browser session"
        TOKEN = "token", "tokens"
        BOTH = "both", "browser session and tokens"

    class RevokeReason(models.TextChoices):
        LOGOUT = "logout", "signed out"
        LOGOUT_ALL = "logout_all", "signed out everywhere"
        USER_REVOKED = "user_revoked", "signed out from another device"
        PASSWORD_CHANGED = "password_changed", "password changed"
        TOKEN_REUSED = "token_reused", "refresh token reused"
        ADMIN = "admin", "revoked by staff"
        USER_DEACTIVATED = "user_deactivated", "account deactivated"

    sid = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_sessions")
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField()
    ip = models.GenericIPAddressField("address", null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    session_key = models.CharField(
        max_length=40, blank=True, default="", help_text="The Django session carrying it, if any."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=20, choices=RevokeReason.choices, blank=True, default="")

    class Meta:
        ordering = ["-last_used_at"]
        indexes = [
            models.Index(fields=["user", "-last_used_at"], name="loginsession_user_used"),
            models.Index(fields=["last_used_at"], name="loginsession_last_used"),
            models.Index(fields=["ip"], name="loginsession_ip"),
            models.Index(fields=["session_key"], name="loginsession_session_key"),
            # Clean-up of revoked sessions past their retention period.
            models.Index(fields=["revoked_at"], name="loginsession_revoked", condition=Q(revoked_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return str(self.sid)

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None


class OutstandingToken(models.Model):
    """A refresh token we issued: its id, family and fate, never the token itself.

    Only the `jti` is kept, so the table holds nothing an attacker could replay.
    A refresh token whose `jti` has no row here is refused, so deleting a row
    can never un-blacklist a token.
    """

    class BlacklistReason(models.TextChoices):
        ROTATED = "rotated", "rotated"
        REVOKED = "revoked", "login session revoked"
        ADMIN = "admin", "blacklisted by staff"

    jti = models.UUIDField(primary_key=True, editable=False)
    login_session = models.ForeignKey(
        LoginSession, on_delete=models.CASCADE, related_name="refresh_tokens", db_column="sid"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    blacklisted_at = models.DateTimeField(null=True, blank=True)
    blacklist_reason = models.CharField(max_length=8, choices=BlacklistReason.choices, blank=True, default="")

    class Meta:
        verbose_name = "outstanding token"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["expires_at"], name="outstanding_expires"),
            models.Index(fields=["user", "-created_at"], name="outstanding_user_created"),
            models.Index(fields=["-created_at"], name="outstanding_created"),
            # Admin at a million rows: the "active"/"expired" filters read the
            # few unblacklisted rows newest first (expires_at is checked in the
            # index, not the table), the blacklist list by date.
            models.Index(
                fields=["-created_at", "expires_at"],
                name="outstanding_unused_created",
                condition=Q(blacklisted_at__isnull=True),
            ),
            models.Index(
                fields=["-blacklisted_at"], name="outstanding_blacklisted", condition=Q(blacklisted_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return str(self.jti)


class BlacklistedTokenManager(models.Manager["BlacklistedToken"]):
    def get_queryset(self) -> models.QuerySet[BlacklistedToken]:
        return super().get_queryset().filter(blacklisted_at__isnull=False)


class BlacklistedToken(OutstandingToken):
    """The blacklisted refresh tokens, read-only in admin."""

    objects = BlacklistedTokenManager()  # type: ignore[misc]

    class Meta:
        proxy = True
        verbose_name = "blacklisted token"
        ordering = ["-blacklisted_at"]


class AuthEvent(models.Model):
    """One line of the audit trail: who did what to which account or key, from where.

    Never holds a password or a token; `data` carries identifiers only.
    """

    class Kind(models.TextChoices):
        SIGN_IN = "sign_in", "signed in"
        SIGN_IN_FAILED = "sign_in_failed", "sign-in failed"
        SIGN_IN_THROTTLED = "sign_in_throttled", "sign-in throttled"
        REFRESH = "refresh", "token refreshed"
        TOKEN_REUSED = "token_reused", "refresh token reuse detected"
        LOGOUT = "logout", "signed out"
        SESSION_REVOKED = "session_revoked", "login session revoked"
        TOKEN_BLACKLISTED = "token_blacklisted", "refresh token blacklisted"
        PASSWORD_CHANGED = "password_changed", "password changed"
        SIGNED_UP = "signed_up", "account created"
        KEY_ROTATED = "key_rotated", "signing key rotated"
        KEY_REVOKED = "key_revoked", "signing key revoked"
        KEY_IMPORTED = "key_imported", "signing key imported"

    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who did it, when someone other than `user` did (staff in admin).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = models.CharField(max_length=254, blank=True, default="", help_text="As typed, for failed sign-ins.")
    sid = models.UUIDField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["kind", "-created_at"], name="authevent_kind_created"),
            models.Index(fields=["user", "-created_at"], name="authevent_user_created"),
            # Admin search by typed email (failed sign-ins) and by sid.
            models.Index(fields=["email", "-created_at"], name="authevent_email_created", condition=~Q(email="")),
            models.Index(fields=["sid"], name="authevent_sid", condition=Q(sid__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"
