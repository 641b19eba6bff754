"""Token settings, read from django.conf.settings at call time (tests override them)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

# A compact JWT of ours is well under 1 KiB; anything past this is hostile.
MAX_TOKEN_BYTES = 4096


def algorithm() -> str:
    return str(settings.JWT_ALGORITHM)


def issuer() -> str:
    return str(settings.JWT_ISSUER)


def audience() -> str | None:
    return str(settings.JWT_AUDIENCE) or None


def access_lifetime() -> timedelta:
    return timedelta(minutes=int(settings.JWT_ACCESS_TOKEN_LIFETIME_MINUTES))


def refresh_lifetime() -> timedelta:
    return timedelta(days=int(settings.JWT_REFRESH_TOKEN_LIFETIME_DAYS))


def reuse_grace() -> timedelta:
    return timedelta(seconds=int(settings.JWT_REFRESH_REUSE_GRACE_SECONDS))


def jwks_max_age() -> int:
    return int(settings.JWT_JWKS_MAX_AGE)


def keyring_refresh_seconds() -> float:
    return float(settings.JWT_KEYRING_REFRESH_SECONDS)


def key_encryption_keys() -> list[str]:
    return list(settings.JWT_KEY_ENCRYPTION_KEYS)


def cookie_samesite() -> str:
    return str(settings.JWT_COOKIE_SAMESITE)


def cookie_secure() -> bool:
    return bool(settings.SECURE_COOKIES)
