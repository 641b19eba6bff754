"""Settings the benchmark relies on: PASSWORD_HASHER and DATABASE_CONN_HEALTH_CHECKS."""

from __future__ import annotations

import pytest

from tests.config.test_settings import SECRETS, settings_in_subprocess

FIRST_HASHER = "s.PASSWORD_HASHERS[0].rsplit('.', 1)[1]"


@pytest.mark.parametrize(
    ("value", "first"),
    [(None, "TunedArgon2PasswordHasher"), ("argon2", "TunedArgon2PasswordHasher"), ("pbkdf2", "PBKDF2PasswordHasher")],
)
def test_password_hasher_picks_the_hasher_of_new_passwords(value, first):
    env = {**SECRETS, **({"PASSWORD_HASHER": value} if value else {})}
    result = settings_in_subprocess(env, f"({FIRST_HASHER}, len(s.PASSWORD_HASHERS))")
    assert result.returncode == 0, result.stderr
    # Reordered, never shortened: every stored hash still verifies.
    assert result.stdout.strip() == str((first, 5))


def test_an_unknown_password_hasher_is_refused():
    result = settings_in_subprocess({**SECRETS, "PASSWORD_HASHER": "md5"}, "1")
    assert result.returncode != 0
    assert "PASSWORD_HASHER" in result.stderr


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("False", False), ("True", True)])
def test_database_health_checks_come_from_the_environment(value, expected):
    env = {
        **SECRETS,
        "DATABASE_URL": "postgres://u:p@db.internal:5433/auth",
        **({"DATABASE_CONN_HEALTH_CHECKS": value} if value else {}),
    }
    result = settings_in_subprocess(env, "s.DATABASES['default']['CONN_HEALTH_CHECKS']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


@pytest.mark.django_db
def test_with_pbkdf2_first_a_pbkdf2_hash_is_not_upgraded(settings, django_user_model):
    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = [settings.PASSWORD_HASHERS[1], settings.PASSWORD_HASHERS[0]]
    user = django_user_model.objects.create(email="p@example.com", password=make_password("pw", hasher="pbkdf2_sha256"))
    before = user.password
    assert user.check_password("pw")
    user.refresh_from_db()
    assert user.password == before
