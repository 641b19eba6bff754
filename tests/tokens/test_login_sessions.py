"""Login sessions: rotation, reuse detection, revocation paths, one-query authentication."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.sessions.models import Session
from rest_framework.test import APIClient

from conftest import PASSWORD, obtain
from tokens import services
from tokens.models import AuthEvent, LoginSession, OutstandingToken
from tokens.tokens import AccessToken, RefreshToken

pytestmark = pytest.mark.django_db


def refresh(client: APIClient, token: str):
    return client.post("/api/token/refresh/", {"refresh": token}, format="json")


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def test_sign_in_creates_a_token_login_session(api_client, user):
    response = obtain(api_client, HTTP_USER_AGENT="FlutterApp/1.0", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "access_expires_at", "refresh_expires_at"}
    access, refresh_token = AccessToken(body["access"]), RefreshToken(body["refresh"])
    assert access.sid == refresh_token.sid
    session = LoginSession.objects.get(sid=access.sid)
    assert session.user == user
    assert session.transport == LoginSession.Transport.TOKEN
    assert session.ip == "203.0.113.9"
    assert session.user_agent == "FlutterApp/1.0"
    assert session.revoked_at is None
    row = OutstandingToken.objects.get(jti=refresh_token.jti)
    assert row.login_session_id == session.sid and row.blacklisted_at is None


def test_no_usable_token_is_stored(api_client, user):
    body = obtain(api_client).json()
    stored = " ".join(str(v) for row in OutstandingToken.objects.values() for v in row.values())
    stored += " ".join(str(v) for row in LoginSession.objects.values() for v in row.values())
    stored += " ".join(str(v) for row in AuthEvent.objects.values() for v in row.values())
    for token in (body["access"], body["refresh"]):
        for part in token.split("."):
            assert part not in stored


def test_rotation_keeps_the_family_and_blacklists_the_old_token(api_client, tokens, clock):
    clock.advance(minutes=1)
    response = refresh(api_client, tokens["refresh"])
    assert response.status_code == 200
    new = response.json()
    old_token, new_token = RefreshToken(tokens["refresh"]), RefreshToken(new["refresh"])
    assert new_token.sid == old_token.sid and new_token.jti != old_token.jti
    old_row = OutstandingToken.objects.get(jti=old_token.jti)
    assert old_row.blacklisted_at == clock.now
    assert old_row.blacklist_reason == OutstandingToken.BlacklistReason.ROTATED
    assert LoginSession.objects.get(sid=old_token.sid).last_used_at == clock.now
    assert bearer(new["access"]).get("/api/me/").status_code == 200


def test_reuse_of_a_rotated_token_revokes_the_whole_family(api_client, tokens):
    first = refresh(api_client, tokens["refresh"]).json()
    second = refresh(api_client, first["refresh"]).json()
    third = refresh(api_client, second["refresh"]).json()

    replay = refresh(api_client, first["refresh"])

    assert replay.status_code == 401
    assert replay.json()["code"] == "token_reused"
    sid = uuid.UUID(RefreshToken(tokens["refresh"]).sid)
    session = LoginSession.objects.get(sid=sid)
    assert session.revoked_at is not None
    assert session.revoke_reason == LoginSession.RevokeReason.TOKEN_REUSED
    assert not OutstandingToken.objects.filter(login_session_id=sid, blacklisted_at__isnull=True).exists()
    # The newest token of the family, held by whoever rotated last, is dead too.
    after = refresh(api_client, third["refresh"])
    assert after.status_code == 401
    assert after.json()["code"] == "token_reused"
    # So are the access tokens of the family, at once.
    me = bearer(third["access"]).get("/api/me/")
    assert me.status_code == 401
    assert me.json()["code"] == "session_revoked"
    assert AuthEvent.objects.filter(kind=AuthEvent.Kind.TOKEN_REUSED, sid=sid).count() == 2


def test_reuse_does_not_touch_other_sessions_of_the_user(api_client, user):
    phone = obtain(api_client).json()
    laptop = obtain(api_client).json()
    refresh(api_client, phone["refresh"])
    assert refresh(api_client, phone["refresh"]).json()["code"] == "token_reused"
    assert bearer(laptop["access"]).get("/api/me/").status_code == 200
    assert refresh(api_client, laptop["refresh"]).status_code == 200


def test_grace_period_allows_a_racing_tab_without_revoking(api_client, tokens, clock, settings):
    settings.JWT_REFRESH_REUSE_GRACE_SECONDS = 10
    first = refresh(api_client, tokens["refresh"])
    clock.advance(seconds=5)
    racing = refresh(api_client, tokens["refresh"])
    assert first.status_code == 200
    assert racing.status_code == 200
    assert RefreshToken(racing.json()["refresh"]).sid == RefreshToken(tokens["refresh"]).sid
    assert LoginSession.objects.filter(revoked_at__isnull=True).count() == 1
    # Past the window the same replay is reuse.
    clock.advance(seconds=6)
    late = refresh(api_client, tokens["refresh"])
    assert late.status_code == 401
    assert late.json()["code"] == "token_reused"


def test_grace_period_zero_is_strict(api_client, tokens, settings):
    settings.JWT_REFRESH_REUSE_GRACE_SECONDS = 0
    assert refresh(api_client, tokens["refresh"]).status_code == 200
    assert refresh(api_client, tokens["refresh"]).json()["code"] == "token_reused"


def test_refresh_token_with_no_record_is_refused(api_client, tokens):
    OutstandingToken.objects.all().delete()  # deleting rows must never un-blacklist anything
    response = refresh(api_client, tokens["refresh"])
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_refresh_of_a_revoked_session_is_refused(api_client, tokens):
    sid = RefreshToken(tokens["refresh"]).sid
    services.login_session_revoke(sid=sid, reason=LoginSession.RevokeReason.ADMIN)
    response = refresh(api_client, tokens["refresh"])
    assert response.status_code == 401
    assert response.json()["code"] == "token_reused"


def test_access_token_of_a_revoked_session_fails_on_the_next_request(api_client, tokens):
    client = bearer(tokens["access"])
    assert client.get("/api/me/").status_code == 200
    services.login_session_revoke(sid=AccessToken(tokens["access"]).sid, reason=LoginSession.RevokeReason.ADMIN)
    response = client.get("/api/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "The login session has ended; sign in again.", "code": "session_revoked"}


def test_authenticated_request_costs_one_query(api_client, tokens, django_assert_num_queries):
    client = bearer(tokens["access"])
    client.get("/api/me/")  # warm the key ring
    with django_assert_num_queries(1):
        response = client.get("/api/me/")
    assert response.status_code == 200


def test_access_token_claims(api_client, user, tokens, settings):
    access = AccessToken(tokens["access"]).payload
    assert access["token_type"] == "access"
    assert access["sub"] == str(user.pk)
    assert access["name"] == "Ada Lovelace"
    assert access["admin"] is False
    assert access["iss"] == settings.JWT_ISSUER
    assert uuid.UUID(access["sid"]) and uuid.UUID(access["jti"])
    refresh_payload = RefreshToken(tokens["refresh"]).payload
    assert refresh_payload["token_type"] == "refresh"
    assert "name" not in refresh_payload and "admin" not in refresh_payload


# -- logout ---------------------------------------------------------------------


def test_logout_with_refresh_token_revokes_the_session_and_is_idempotent(api_client, tokens):
    for _ in range(2):
        response = api_client.post("/api/token/logout/", {"refresh": tokens["refresh"]}, format="json")
        assert response.status_code == 204
    session = LoginSession.objects.get(sid=RefreshToken(tokens["refresh"]).sid)
    assert session.revoke_reason == LoginSession.RevokeReason.LOGOUT
    assert bearer(tokens["access"]).get("/api/me/").status_code == 401
    assert refresh(api_client, tokens["refresh"]).status_code == 401


def test_logout_with_a_rotated_token_still_ends_the_session(api_client, tokens):
    new = refresh(api_client, tokens["refresh"]).json()
    response = api_client.post("/api/token/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 204
    assert bearer(new["access"]).get("/api/me/").status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"refresh": ""}, {"refresh": "not-a-jwt"}, {"refresh": "a.b.c"}, {"refresh": 12}, {"refresh": None}],
)
def test_logout_with_garbage_is_a_4xx_and_changes_nothing(api_client, tokens, body):
    response = api_client.post("/api/token/logout/", body, format="json")
    assert 400 <= response.status_code < 500
    assert "code" in response.json()
    assert LoginSession.objects.filter(revoked_at__isnull=True).count() == 1


def test_logout_with_access_token_header_ends_that_session(api_client, tokens):
    client = bearer(tokens["access"])
    assert client.post("/api/token/logout/", {}, format="json").status_code == 204
    assert client.get("/api/me/").status_code == 401


def test_logout_all_revokes_every_session_of_the_user_only(api_client, user, staff_user):
    mine = [obtain(api_client).json() for _ in range(3)]
    theirs = obtain(api_client, email="staff@example.com").json()
    response = bearer(mine[0]["access"]).post("/api/token/logout/all/")
    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    for pair in mine:
        assert bearer(pair["access"]).get("/api/me/").status_code == 401
        assert refresh(api_client, pair["refresh"]).status_code == 401
    assert bearer(theirs["access"]).get("/api/me/").status_code == 200


def test_logout_all_needs_authentication(api_client):
    response = api_client.post("/api/token/logout/all/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# -- the sessions API -------------------------------------------------------------


def test_sessions_list_marks_the_current_one(api_client, user):
    first = obtain(api_client, HTTP_USER_AGENT="Phone").json()
    obtain(api_client, HTTP_USER_AGENT="Laptop")
    ended = obtain(api_client).json()
    api_client.post("/api/token/logout/", {"refresh": ended["refresh"]}, format="json")
    response = bearer(first["access"]).get("/api/sessions/")
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 2
    current = [s for s in listed if s["current"]]
    assert len(current) == 1
    assert current[0]["sid"] == AccessToken(first["access"]).sid
    assert current[0]["user_agent"] == "Phone"
    assert set(listed[0]) == {"sid", "transport", "created_at", "last_used_at", "ip", "user_agent", "current"}


def test_delete_session_revokes_it(api_client, user):
    phone = obtain(api_client).json()
    laptop = obtain(api_client).json()
    sid = AccessToken(laptop["access"]).sid
    response = bearer(phone["access"]).delete(f"/api/sessions/{sid}/")
    assert response.status_code == 204
    assert bearer(laptop["access"]).get("/api/me/").status_code == 401
    assert LoginSession.objects.get(sid=sid).revoke_reason == LoginSession.RevokeReason.USER_REVOKED
    assert bearer(phone["access"]).delete(f"/api/sessions/{sid}/").status_code == 404


def test_delete_another_users_session_is_404_and_changes_nothing(api_client, user, staff_user):
    mine = obtain(api_client).json()
    theirs = obtain(api_client, email="staff@example.com").json()
    sid = AccessToken(theirs["access"]).sid
    response = bearer(mine["access"]).delete(f"/api/sessions/{sid}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert bearer(theirs["access"]).get("/api/me/").status_code == 200


@pytest.mark.parametrize("sid", ["not-a-uuid", "1234", "../../admin", "%00"])
def test_delete_session_with_a_malformed_sid_is_404_json(auth_client, sid):
    response = auth_client.delete(f"/api/sessions/{sid}/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


# -- password change, deactivation, deletion ------------------------------------------


def test_password_change_revokes_other_sessions_and_keeps_this_one(api_client, user):
    this = obtain(api_client).json()
    other = obtain(api_client).json()
    response = bearer(this["access"]).post(
        "/api/accounts/password/",
        {"old_password": PASSWORD, "new_password": "a brand new passphrase 42"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"revoked_sessions": 1}
    assert bearer(this["access"]).get("/api/me/").status_code == 200
    assert refresh(api_client, this["refresh"]).status_code == 200
    assert bearer(other["access"]).get("/api/me/").status_code == 401
    assert obtain(api_client, password="a brand new passphrase 42").status_code == 200
    assert obtain(api_client).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"old_password": "wrong", "new_password": "a brand new passphrase 42"}, "old_password"),
        ({"old_password": PASSWORD, "new_password": "short"}, "new_password"),
        ({"old_password": PASSWORD, "new_password": "password123"}, "new_password"),
        ({"old_password": PASSWORD}, "new_password"),
    ],
)
def test_password_change_refuses_bad_input_and_changes_nothing(api_client, tokens, body, field):
    response = bearer(tokens["access"]).post("/api/accounts/password/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert obtain(api_client).status_code == 200


def test_deactivating_a_user_ends_all_their_sessions(api_client, user):
    pair = obtain(api_client).json()
    user.is_active = False
    user.save()
    assert LoginSession.objects.get(user=user).revoke_reason == LoginSession.RevokeReason.USER_DEACTIVATED
    assert bearer(pair["access"]).get("/api/me/").status_code == 401
    assert refresh(api_client, pair["refresh"]).status_code == 401
    assert obtain(api_client).status_code == 401


def test_deleting_a_user_ends_their_browser_and_token_sessions(api_client, user, client):
    pair = obtain(api_client).json()
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    session_key = client.session.session_key
    assert Session.objects.filter(session_key=session_key).exists()
    user.delete()
    assert not Session.objects.filter(session_key=session_key).exists()
    assert bearer(pair["access"]).get("/api/me/").status_code == 401
    assert refresh(api_client, pair["refresh"]).status_code == 401


def test_browser_sign_in_creates_a_session_login_session(client, user):
    client.post("/accounts/login/", {"username": "ADA@example.com", "password": PASSWORD})
    session = LoginSession.objects.get(user=user)
    assert session.transport == LoginSession.Transport.SESSION
    assert session.session_key == client.session.session_key
    assert client.session["tokens_sid"] == str(session.sid)


def test_revoking_a_browser_login_session_deletes_its_django_session(client, user):
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert client.get("/api/me/").status_code == 200
    services.login_session_revoke(sid=client.session["tokens_sid"], reason=LoginSession.RevokeReason.ADMIN)
    assert client.get("/api/me/").status_code in (401, 403)
    assert client.get("/accounts/").status_code == 302


def test_session_bridge_issues_tokens_for_the_same_login_session(client, user):
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    sid = client.session["tokens_sid"]
    response = client.post("/api/token/session/")
    assert response.status_code == 200
    assert AccessToken(response.json()["access"]).sid == sid
    assert LoginSession.objects.get(sid=sid).transport == LoginSession.Transport.BOTH
    # One revocation ends both transports.
    api = bearer(response.json()["access"])
    assert api.get("/api/me/").status_code == 200
    api.post("/api/token/logout/all/")
    assert client.get("/accounts/").status_code == 302


def test_replay_that_reads_an_earlier_clock_than_the_rotation_is_still_reuse(api_client, tokens, clock, settings):
    # A request that waited on the row lock while another rotated the token
    # may have started earlier than the rotation; with no grace that must
    # still be reuse (it once counted as "within a grace of 0 seconds").
    settings.JWT_REFRESH_REUSE_GRACE_SECONDS = 0
    clock.advance(seconds=1)
    assert refresh(api_client, tokens["refresh"]).status_code == 200
    clock.advance(seconds=-1)
    replay = refresh(api_client, tokens["refresh"])
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_reused"
