"""Production settings: `check --deploy` is clean, security headers are sent, the admin's static files are served."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

# The HTTPS variables that .env.example documents, switched on.
PRODUCTION_ENV = {
    "DEBUG": "False",
    "ALLOWED_HOSTS": "auth.example.com",
    "SECURE_COOKIES": "True",
    "SECURE_SSL_REDIRECT": "True",
    "SECURE_PROXY_SSL_HEADER": "True",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
    "SECURE_HSTS_PRELOAD": "True",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the test names: the test run's own secrets and switches stay out.
    dropped = ("DJANGO_", "SECURE_", "DEBUG", "SECRET_KEY", "JWT_", "ALLOWED_HOSTS", "LOGIN_RATE", "DATABASE_URL")
    base = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    base.update({"DJANGO_READ_DOT_ENV": "0", "DJANGO_SETTINGS_MODULE": "config.settings"}, **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def _secrets() -> dict[str, str]:
    return {"SECRET_KEY": secrets.token_urlsafe(50), "JWT_KEY_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


def test_check_deploy_passes_with_the_documented_https_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV, **_secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_them():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="False", **_secrets())
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_KEY_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {**PRODUCTION_ENV, **_secrets()}
    del env[missing]
    result = _manage("check", **env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_a_malformed_login_rate_is_refused():
    result = _manage("check", DEBUG="True", LOGIN_RATE="lots")
    assert result.returncode != 0
    assert "LOGIN_RATE" in result.stderr


# -- headers and static files, in process, with DEBUG off -------------------------


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return settings


@pytest.mark.django_db
def test_html_pages_get_the_security_headers(client, production):
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


@pytest.mark.django_db
def test_admin_login_page_gets_the_content_security_policy(client, production):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "unsafe-inline" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_login_page_has_no_inline_script(client, production):
    html = client.get("/accounts/login/").content.decode()
    for chunk in html.split("<script")[1:]:
        assert chunk.split(">", 1)[0].strip().startswith("src=") or " src=" in chunk.split(">", 1)[0]


def test_json_answers_get_nosniff_but_no_csp(client, production):
    response = client.get("/api/ping/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response


def test_no_hsts_until_it_is_configured(client, settings):
    settings.SECURE_HSTS_SECONDS = 0
    response = client.get("/api/ping/", secure=True)
    assert "Strict-Transport-Security" not in response


def test_swagger_ui_gets_the_looser_policy_it_needs(client, production):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert "'unsafe-inline'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/static/admin/css/base.css", "/static/admin/js/core.js"])
def test_admin_static_files_are_served_by_whitenoise_with_debug_off(client, production, path):
    assert production.DEBUG is False
    response = client.get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
    assert response["Content-Type"].startswith(("text/css", "text/javascript", "application/javascript"))
