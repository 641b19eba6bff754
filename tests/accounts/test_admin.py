"""Admin over accounts: search, filters, the login sessions inline, revoking an account's sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.admin import INLINE_SESSIONS
from accounts.models import User
from conftest import PASSWORD
from tokens import clock as token_clock
from tokens.models import AuthEvent, LoginSession, OutstandingToken

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"


@pytest.fixture
def superuser(db: None) -> Any:
    return User.objects.create_superuser(email="root@example.com", password=PASSWORD, name="Root")


@pytest.fixture
def root_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def viewer_client(db: None) -> Client:
    viewer = User.objects.create_user(email="viewer@example.com", password=PASSWORD, name="Viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "view_loginsession"]))
    client = Client()
    client.force_login(viewer)
    return client


def session_make(user: Any, *, hours_ago: int = 0, revoked: bool = False) -> LoginSession:
    when = token_clock.now() - timedelta(hours=hours_ago)
    session = LoginSession.objects.create(
        user=user,
        transport=LoginSession.Transport.TOKEN,
        ip="198.51.100.4",
        user_agent="Dart/3.5 (dart:io)",
        created_at=when,
        last_used_at=when,
        revoked_at=when if revoked else None,
        revoke_reason=LoginSession.RevokeReason.LOGOUT if revoked else "",
    )
    OutstandingToken.objects.create(
        jti=uuid.uuid4(),
        login_session=session,
        user=user,
        created_at=when,
        expires_at=when + timedelta(days=7),
    )
    return session


def users_make(count: int, start: int = 0) -> list[User]:
    return [
        User.objects.create_user(email=f"person{i}@example.com", name=f"Person {i}", is_staff=i % 2 == 0)
        for i in range(start, start + count)
    ]


def listed(client: Client, url: str) -> set[str]:
    return {u.email for u in client.get(url).context["cl"].result_list}


def test_non_staff_cannot_reach_the_users_list(client, user):
    client.force_login(user)
    assert client.get(USERS).status_code == 302


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ada@example.com", {"ada@example.com"}),
        ("  ADA@Example.COM ", {"ada@example.com"}),
        ("lovelace", {"ada@example.com"}),
        ("example.com", {"ada@example.com", "root@example.com", "person0@example.com", "person1@example.com"}),
        ("nobody@example.com", set()),
    ],
)
def test_search_by_email_or_name(root_client, user, query, expected):
    users_make(2)
    assert listed(root_client, f"{USERS}?q={query}") == expected


def test_filters_by_staff_and_active(root_client, user):
    users_make(3)
    User.objects.filter(email="person1@example.com").update(is_active=False)
    assert listed(root_client, f"{USERS}?is_staff__exact=1") == {
        "root@example.com",
        "person0@example.com",
        "person2@example.com",
    }
    assert listed(root_client, f"{USERS}?is_active__exact=0") == {"person1@example.com"}


def test_inline_shows_the_most_recent_sessions_read_only_without_session_keys(root_client, user):
    browser = Client()
    browser.force_login(user)
    carried = LoginSession.objects.get(user=user)
    old = [session_make(user, hours_ago=100 + i) for i in range(INLINE_SESSIONS)]
    revoked = session_make(user, hours_ago=1, revoked=True)

    page = root_client.get(f"{USERS}{user.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert str(carried.sid) in html
    assert str(revoked.sid) in html
    assert "revoked (signed out)" in html
    assert str(old[-1].sid) not in html  # past the most recent INLINE_SESSIONS
    assert carried.session_key not in html
    assert 'name="login_sessions-0-ip"' not in html  # read-only: no inputs


def test_revoke_sessions_of_selected_users_records_who(root_client, superuser, user, staff_user):
    mine = [session_make(user), session_make(user)]
    theirs = session_make(staff_user)

    response = root_client.post(
        USERS, {"action": "revoke_login_sessions", "_selected_action": [str(user.pk)], "index": "0"}
    )

    assert response.status_code == 302
    for session in mine:
        session.refresh_from_db()
        assert session.revoke_reason == LoginSession.RevokeReason.ADMIN
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert not OutstandingToken.objects.filter(user=user, blacklisted_at__isnull=True).exists()
    actors = set(AuthEvent.objects.filter(kind=AuthEvent.Kind.SESSION_REVOKED).values_list("user_id", "actor_id"))
    assert actors == {(user.pk, superuser.pk)}


def test_view_only_staff_cannot_revoke(viewer_client, user):
    session = session_make(user)
    page = viewer_client.get(USERS)
    assert page.status_code == 200
    assert b"revoke_login_sessions" not in page.content
    viewer_client.post(USERS, {"action": "revoke_login_sessions", "_selected_action": [str(user.pk)], "index": "0"})
    session.refresh_from_db()
    assert session.revoked_at is None


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", [USERS, f"{USERS}?q=person1@example.com", f"{USERS}?q=person&is_staff__exact=1"])
def test_users_changelist_query_count_stays_flat(root_client, url, django_assert_max_num_queries):
    users_make(3)
    root_client.get(url)
    few = _queries(root_client, url)
    users_make(30, start=3)
    with django_assert_max_num_queries(few):
        root_client.get(url)


def test_user_page_query_count_stays_flat_as_sessions_grow(root_client, user, django_assert_max_num_queries):
    url = f"{USERS}{user.pk}/change/"
    session_make(user)
    root_client.get(url)
    few = _queries(root_client, url)
    for i in range(INLINE_SESSIONS + 10):
        session_make(user, hours_ago=i)
    with django_assert_max_num_queries(few):
        root_client.get(url)
