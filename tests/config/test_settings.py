"""Settings come from the environment and fail fast without production secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    code = f"import config.settings as s; print({expression})"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), "DJANGO_READ_DOT_ENV": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


SECRETS = {"SECRET_KEY": "s" * 50, "JWT_KEY_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE="}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_KEY_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = settings_in_subprocess({"DEBUG": "False", **env}, "s.SECRET_KEY")
    assert result.returncode != 0
    assert f"The environment variable {missing} is required" in result.stderr


def test_debug_runs_without_secrets():
    result = settings_in_subprocess({"DEBUG": "True"}, "bool(s.SECRET_KEY and s.JWT_KEY_ENCRYPTION_KEYS)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_defaults_match_the_design():
    expr = (
        "(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'],"
        " s.JWT_ALGORITHM, s.JWT_ISSUER, s.JWT_AUDIENCE, s.JWT_ACCESS_TOKEN_LIFETIME_MINUTES,"
        " s.JWT_REFRESH_TOKEN_LIFETIME_DAYS, s.JWT_REFRESH_REUSE_GRACE_SECONDS, s.JWT_JWKS_MAX_AGE,"
        " s.JWT_COOKIE_SAMESITE, s.LOGIN_RATE, s.SECURE_COOKIES, s.CORS_ALLOWED_ORIGINS)"
    )
    result = settings_in_subprocess(SECRETS, expr)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(
        (
            False,
            ["localhost", "127.0.0.1"],
            "django.db.backends.sqlite3",
            "django.core.cache.backends.locmem.LocMemCache",
            "RS256",
            "http://localhost:8000",
            "",
            15,
            7,
            0,
            300,
            "Lax",
            "10/min",
            True,
            [],
        )
    )


def test_environment_values_are_parsed():
    env = {
        **SECRETS,
        "ALLOWED_HOSTS": "auth.example.com,api.example.com",
        "DATABASE_URL": "postgres://u:p@db.internal:5433/auth",
        "CACHE_URL": "redis://127.0.0.1:6379/2",
        "CORS_ALLOWED_ORIGINS": "https://app.example.com",
        "JWT_ACCESS_TOKEN_LIFETIME_MINUTES": "5",
        "SECURE_COOKIES": "false",
    }
    expr = (
        "(s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], s.DATABASES['default']['PORT'],"
        " s.DATABASES['default']['CONN_HEALTH_CHECKS'], s.CACHES['default']['BACKEND'],"
        " s.CORS_ALLOWED_ORIGINS, s.CSRF_TRUSTED_ORIGINS, s.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].seconds,"
        " s.SESSION_COOKIE_SECURE)"
    )
    result = settings_in_subprocess(env, expr)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(
        (
            ["auth.example.com", "api.example.com"],
            "config.db.postgresql",
            5433,
            True,
            "django.core.cache.backends.redis.RedisCache",
            ["https://app.example.com"],
            ["https://app.example.com"],
            300,
            False,
        )
    )


def test_prepared_statements_follow_the_environment():
    expr = "s.DATABASES['default']['OPTIONS']['prepare_hot_statements']"
    url = {"DATABASE_URL": "postgres://u:p@db.internal:5433/auth"}
    on = settings_in_subprocess({**SECRETS, **url}, expr)
    off = settings_in_subprocess({**SECRETS, **url, "DATABASE_PREPARED_STATEMENTS": "False"}, expr)
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False"), (on.stderr, off.stderr)


@pytest.mark.parametrize(("name", "value"), [("JWT_ALGORITHM", "HS256"), ("JWT_COOKIE_SAMESITE", "Sometimes")])
def test_invalid_choices_are_refused(name, value):
    result = settings_in_subprocess({**SECRETS, name: value}, "1")
    assert result.returncode != 0
    assert name in result.stderr


def test_env_example_documents_every_variable_the_settings_read():
    import re

    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.[a-z]+)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'_required\(\s*"([A-Z][A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read, "no env reads found: the pattern is out of date"
    assert read - documented == set()
