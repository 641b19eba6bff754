"""The one settings module: every value comes from the environment.

Variables are read through django-environ, from the process environment first
and from `.env` in the project root when that file exists. The names and
defaults are part of the contract in DESIGN.md; `.env.example` documents each.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# `make test` sets DJANGO_READ_DOT_ENV=0 so that a developer's .env never
# leaks into the test run.
if env.bool("DJANGO_READ_DOT_ENV", default=True) and (BASE_DIR / ".env").is_file():
    # Values already in the environment win over the file.
    env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DEBUG", default=False)


def _required(name: str, *, dev_default: str) -> str:
    """Read a secret that production must set; development may fall back."""
    value: str = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"The environment variable {name} is required when DEBUG is off. "
        "Set it in the environment or in .env (see .env.example)."
    )


# Development fallbacks only ever apply with DEBUG on; `make run` writes fresh
# random values into .env anyway.
SECRET_KEY: str = _required("SECRET_KEY", dev_default="django-insecure-development-only-secret-key")
JWT_KEY_ENCRYPTION_KEYS: list[str] = [
    k.strip()
    for k in _required(
        "JWT_KEY_ENCRYPTION_KEYS",
        dev_default="ZGV2ZWxvcG1lbnQtb25seS1mZXJuZXQta2V5LTMyYnk=",
    ).split(",")
    if k.strip()
]

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "tokens",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.ApiErrorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tokens.middleware.LoginSessionActivityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock up front, so two
    # refreshes of one token serialise instead of both reading it as unused;
    # WAL lets readers go on while one writer works.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend plus a health check without a round trip, prepared
        # statements for the hot paths, and pipelining (config/db/postgresql).
        _db["ENGINE"] = "config.db.postgresql"
        _db.setdefault("OPTIONS", {}).setdefault(
            "prepare_hot_statements", env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
        )
    # Persistent connections with a health check: a worker keeps its
    # connection between requests and replaces it after the database restarts.
    # On PostgreSQL the check costs no round trip while the connection is busy
    # (see config/db/postgresql/base.py); DATABASE_CONN_HEALTH_CHECKS=False
    # turns it off, and a connection broken by a restart then fails one
    # request (503) before Django replaces it.
    _db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=600))
    _db.setdefault("CONN_HEALTH_CHECKS", env.bool("DATABASE_CONN_HEALTH_CHECKS", default=True))
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Auth -----------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:profile"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "accounts.hashers.TunedArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# `pbkdf2` puts Django's default PBKDF2 first: new passwords get PBKDF2 hashes
# and existing PBKDF2 hashes are not upgraded on sign-in. Only the benchmark
# uses it, to compare sign-in cost against Argon2id; production keeps argon2.
PASSWORD_HASHER: str = env.str("PASSWORD_HASHER", default="argon2")
if PASSWORD_HASHER == "pbkdf2":
    PASSWORD_HASHERS.insert(0, PASSWORD_HASHERS.pop(1))
elif PASSWORD_HASHER != "argon2":
    raise ImproperlyConfigured("PASSWORD_HASHER must be argon2 or pbkdf2.")
# Argon2id cost. The defaults are OWASP's first recommended set (19 MiB,
# two passes, one lane); raise them on bigger machines.
ARGON2_MEMORY_COST_KIB: int = env.int("ARGON2_MEMORY_COST_KIB", default=19 * 1024)
ARGON2_TIME_COST: int = env.int("ARGON2_TIME_COST", default=2)
ARGON2_PARALLELISM: int = env.int("ARGON2_PARALLELISM", default=1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Sessions, cookies, HTTPS ---------------------------------------------
SECURE_COOKIES: bool = env.bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = env.str("CSRF_COOKIE_SAMESITE", default="Lax")
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)

SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent on HTML pages by config.middleware; the pages have no inline scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (/api/docs/) boots with an inline script.
CONTENT_SECURITY_POLICY_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Request bodies above this answer 413 (the API's JSON bodies are a few KiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- CORS (the web app on another origin) -----------------------------------
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = True
# The web app's origins are trusted for CSRF too unless set apart.
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=CORS_ALLOWED_ORIGINS)
CORS_URLS_REGEX = r"^/(api/|\.well-known/).*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-csrftoken",
    "x-token-transport",
)

# --- Internationalisation, static files -----------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names once `collectstatic` has run (make serve);
    # plain names straight from the app folders before that (make run, tests).
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and (STATIC_ROOT / "staticfiles.json").is_file()
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Serve from the finders when nothing was collected, so that a DEBUG-off
# server started without `collectstatic` still has the admin's assets.
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="auth@localhost")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.authentication.LoginSessionJWTAuthentication",
        "tokens.authentication.LoginSessionSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# --- Tokens -------------------------------------------------------------------
JWT_ALGORITHM: str = env.str("JWT_ALGORITHM", default="RS256")
JWT_ISSUER: str = env.str("JWT_ISSUER", default="http://localhost:8000")
JWT_AUDIENCE: str = env.str("JWT_AUDIENCE", default="")
JWT_ACCESS_TOKEN_LIFETIME_MINUTES: int = env.int("JWT_ACCESS_TOKEN_LIFETIME_MINUTES", default=15)
JWT_REFRESH_TOKEN_LIFETIME_DAYS: int = env.int("JWT_REFRESH_TOKEN_LIFETIME_DAYS", default=7)
JWT_REFRESH_REUSE_GRACE_SECONDS: int = env.int("JWT_REFRESH_REUSE_GRACE_SECONDS", default=0)
JWT_JWKS_MAX_AGE: int = env.int("JWT_JWKS_MAX_AGE", default=300)
JWT_COOKIE_SAMESITE: str = env.str("JWT_COOKIE_SAMESITE", default="Lax")
# How often a worker checks the database for a key rotated elsewhere.
JWT_KEYRING_REFRESH_SECONDS: float = env.float("JWT_KEYRING_REFRESH_SECONDS", default=5.0)

if JWT_COOKIE_SAMESITE not in {"Lax", "Strict", "None"}:
    raise ImproperlyConfigured("JWT_COOKIE_SAMESITE must be one of Lax, Strict, None.")
if JWT_ALGORITHM not in {"RS256", "PS256", "ES256", "EdDSA"}:
    raise ImproperlyConfigured("JWT_ALGORITHM must be one of RS256, PS256, ES256, EdDSA.")

# simplejwt reads its own settings for the parts of it we keep (header
# parsing, claim names, lifetimes of its token classes).
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=JWT_ACCESS_TOKEN_LIFETIME_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=JWT_REFRESH_TOKEN_LIFETIME_DAYS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": JWT_ALGORITHM,
    "ISSUER": JWT_ISSUER,
    "AUDIENCE": JWT_AUDIENCE or None,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Auth server API",
    "DESCRIPTION": "Sign-in, RS256 tokens with rotation and reuse detection, login sessions, JWKS.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Throttling -------------------------------------------------------------
LOGIN_RATE: str = env.str("LOGIN_RATE", default="10/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", LOGIN_RATE):
    raise ImproperlyConfigured("LOGIN_RATE must look like 10/min (a count, then s, min, hour or day).")

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
