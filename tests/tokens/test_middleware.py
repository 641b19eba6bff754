import pytest

from conftest import PASSWORD
from tokens.models import LoginSession

pytestmark = pytest.mark.django_db


def test_browser_use_updates_last_used_at_most_every_five_minutes(client, user, clock):
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    session = LoginSession.objects.get(user=user)
    signed_in_at = session.last_used_at

    clock.advance(minutes=1)
    client.get("/accounts/", HTTP_USER_AGENT="Firefox")
    session.refresh_from_db()
    assert session.last_used_at == signed_in_at

    clock.advance(minutes=5)
    client.get("/accounts/", HTTP_USER_AGENT="Firefox", REMOTE_ADDR="198.51.100.4")
    session.refresh_from_db()
    assert session.last_used_at == clock.now
    assert session.ip == "198.51.100.4"
    assert session.user_agent == "Firefox"


def test_bearer_requests_are_not_touched(auth_client, clock, django_assert_num_queries):
    auth_client.get("/api/me/")
    clock.advance(minutes=10)
    with django_assert_num_queries(1):
        assert auth_client.get("/api/me/").status_code == 200


def test_a_revoked_session_is_not_touched(client, user, clock):
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    session = LoginSession.objects.get(user=user)
    LoginSession.objects.filter(pk=session.pk).update(revoked_at=clock.now, revoke_reason="admin")
    clock.advance(minutes=10)
    client.get("/accounts/login/")
    session.refresh_from_db()
    assert session.last_used_at < clock.now
