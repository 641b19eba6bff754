"""The audit trail: every security event leaves an AuthEvent row and a log line, never a secret."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from rest_framework.test import APIClient

from conftest import PASSWORD, obtain
from tokens import services
from tokens.models import AuthEvent, LoginSession
from tokens.signing_keys import signing_key_bootstrap, signing_key_import, signing_key_revoke, signing_key_rotate

pytestmark = pytest.mark.django_db

Kind = AuthEvent.Kind
NEW_PASSWORD = "a brand new passphrase 42"
WRONG_PASSWORD = "guess number one, wrong"
SIGNUP_PASSWORD = "signup secret passphrase 7"


@dataclass
class Trail:
    secrets: list[str] = field(default_factory=list)
    log: str = ""


def _bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture
def trail(user, settings, caplog) -> Trail:
    """Walk through every audited event once; return the secrets used and the log written."""
    from accounts.models import User

    settings.LOGIN_RATE = "8/min"
    caplog.set_level(logging.DEBUG)
    t = Trail(secrets=[PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, SIGNUP_PASSWORD])
    api = APIClient()

    # Sign-up, sign-in (API and page), a failed sign-in.
    assert (
        api.post(
            "/api/accounts/signup/",
            {"email": "grace@example.com", "password": SIGNUP_PASSWORD, "name": "Grace"},
            format="json",
        ).status_code
        == 201
    )
    first = obtain(api).json()
    assert obtain(api, password=WRONG_PASSWORD).status_code == 401
    page = Client()
    assert (
        page.post("/accounts/login/", {"username": "grace@example.com", "password": SIGNUP_PASSWORD}).status_code == 302
    )

    # Refresh, then reuse of the rotated token (revokes that login session).
    rotated = api.post("/api/token/refresh/", {"refresh": first["refresh"]}, format="json").json()
    assert api.post("/api/token/refresh/", {"refresh": first["refresh"]}, format="json").status_code == 401

    # Password change from a second login session; logout of a third.
    second = obtain(api).json()
    other_device = obtain(api).json()
    response = _bearer(second["access"]).post(
        "/api/accounts/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    third = obtain(api, password=NEW_PASSWORD).json()
    assert api.post("/api/token/logout/", {"refresh": third["refresh"]}, format="json").status_code == 204

    # Staff revokes a session in admin terms (with an actor).
    staff = User.objects.create_user(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    fourth = obtain(api, password=NEW_PASSWORD).json()
    sid = LoginSession.objects.filter(user__email="ada@example.com", revoked_at__isnull=True).latest("created_at").sid
    assert services.login_session_revoke(sid=sid, reason=LoginSession.RevokeReason.ADMIN, actor_id=staff.pk)

    # Keys: rotate, import, revoke.
    signing_key_bootstrap()
    signing_key_rotate(force=True, actor_id=staff.pk)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    imported = signing_key_import(pem=pem, actor_id=staff.pk)
    signing_key_revoke(kid=imported.kid, actor_id=staff.pk)
    t.secrets.append(pem.decode().splitlines()[1])

    # Over the rate: throttled.
    for _ in range(10):
        obtain(api, password=WRONG_PASSWORD)

    for pair in (first, rotated, second, other_device, third, fourth):
        for token in (pair["access"], pair["refresh"]):
            t.secrets.append(token)
            _header, payload, signature = token.split(".")
            t.secrets += [payload, signature]
    t.log = caplog.text
    return t


AUDITED = [
    Kind.SIGNED_UP,
    Kind.SIGN_IN,
    Kind.SIGN_IN_FAILED,
    Kind.SIGN_IN_THROTTLED,
    Kind.REFRESH,
    Kind.TOKEN_REUSED,
    Kind.SESSION_REVOKED,
    Kind.PASSWORD_CHANGED,
    Kind.KEY_ROTATED,
    Kind.KEY_IMPORTED,
    Kind.KEY_REVOKED,
]


# One walk through the events serves every check below (it makes RSA keys,
# which is the slow part), so the kinds are checked in one test, not one each.


def test_each_event_kind_is_recorded(trail):
    missing = [kind.value for kind in AUDITED if not AuthEvent.objects.filter(kind=kind).exists()]
    assert missing == []


def test_each_event_kind_writes_a_structured_log_line(trail):
    missing = [kind.value for kind in AUDITED if f'"event":"{kind.value}"' not in trail.log]
    assert missing == []


def test_revocations_write_a_summary_log_line(trail):
    for reason in ("logout", "token_reused", "password_changed", "admin"):
        assert f"login sessions revoked: count=1 reason={reason}" in trail.log


def test_revocations_write_the_structured_audit_line(trail):
    assert '"event":"session_revoked"' in trail.log


def test_sign_in_records_both_transports(trail):
    transports = set(AuthEvent.objects.filter(kind=Kind.SIGN_IN).values_list("data__transport", flat=True))
    assert transports == {"token", "session"}


def test_logout_is_recorded_as_a_revocation_with_its_reason(trail):
    reasons = set(AuthEvent.objects.filter(kind=Kind.SESSION_REVOKED).values_list("data__reason", flat=True))
    assert {"logout", "token_reused", "password_changed", "admin"} <= reasons


def test_revocation_by_staff_names_the_actor(trail):
    event = AuthEvent.objects.get(kind=Kind.SESSION_REVOKED, data__reason="admin")
    assert event.actor is not None and event.actor.email == "root@example.com"
    assert event.user is not None and event.user.email == "ada@example.com"
    for kind in (Kind.KEY_ROTATED, Kind.KEY_IMPORTED, Kind.KEY_REVOKED):
        assert AuthEvent.objects.filter(kind=kind, actor__email="root@example.com").exists()


def test_failed_sign_in_keeps_the_typed_address_and_the_client(trail):
    event = AuthEvent.objects.filter(kind=Kind.SIGN_IN_FAILED).earliest("created_at")
    assert event.email == "ada@example.com"
    assert event.user is None
    assert event.ip == "127.0.0.1"


def test_no_password_or_token_in_any_row(trail):
    rows = " ".join(str(value) for row in AuthEvent.objects.values() for value in row.values())
    assert AuthEvent.objects.count() >= 20
    for secret in trail.secrets:
        assert secret not in rows


def test_no_password_or_token_in_any_log_line(trail):
    assert trail.log
    for secret in trail.secrets:
        assert secret not in trail.log


def test_the_trail_is_read_only_in_admin(trail, client):
    client.force_login(_superuser())
    assert client.get("/admin/tokens/authevent/").status_code == 200
    event = AuthEvent.objects.first()
    assert event is not None
    assert client.get(f"/admin/tokens/authevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/tokens/authevent/add/").status_code == 403
    assert client.post(f"/admin/tokens/authevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuthEvent.objects.filter(pk=event.pk).exists()


def _superuser() -> Any:
    from accounts.models import User

    return User.objects.get(email="root@example.com")
