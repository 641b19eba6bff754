"""Admin for login sessions, outstanding and blacklisted tokens, signing keys and the audit trail."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from conftest import PASSWORD, obtain
from tokens import clock as token_clock
from tokens.admin import LargeTablePaginator, outstanding_token_status, search_term_parse
from tokens.models import AuthEvent, BlacklistedToken, LoginSession, OutstandingToken, SigningKey
from tokens.signing_keys import signing_key_bootstrap

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "login sessions": "/admin/tokens/loginsession/",
    "outstanding tokens": "/admin/tokens/outstandingtoken/",
    "blacklisted tokens": "/admin/tokens/blacklistedtoken/",
    "signing keys": "/admin/tokens/signingkey/",
    "audit trail": "/admin/tokens/authevent/",
}
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
VIEW_PERMISSIONS = [
    "view_loginsession",
    "view_outstandingtoken",
    "view_blacklistedtoken",
    "view_signingkey",
    "view_authevent",
    "view_user",
]


def postgres_only() -> pytest.MarkDecorator:
    return pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


# -- fixtures and builders ------------------------------------------------------------


@pytest.fixture
def superuser(db: None) -> Any:
    from accounts.models import User

    return User.objects.create_superuser(email="root@example.com", password=PASSWORD, name="Root")


@pytest.fixture
def root_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def viewer(db: None) -> Any:
    """Staff who may look at everything but change nothing."""
    from accounts.models import User

    staff = User.objects.create_user(email="viewer@example.com", password=PASSWORD, name="Viewer", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=VIEW_PERMISSIONS))
    return staff


@pytest.fixture
def viewer_client(viewer: Any) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def keys(db: None) -> None:
    signing_key_bootstrap()


def family_make(user: Any, *, tokens: int = 3, revoked: bool = False, ip: str = "192.0.2.10") -> LoginSession:
    """Make a login session with a refresh family: all rotated but the newest."""
    now = token_clock.now()
    session = LoginSession.objects.create(
        user=user,
        transport=LoginSession.Transport.TOKEN,
        ip=ip,
        user_agent="pytest",
        created_at=now - timedelta(hours=tokens),
        last_used_at=now,
        revoked_at=now if revoked else None,
        revoke_reason=LoginSession.RevokeReason.LOGOUT if revoked else "",
    )
    for i in range(tokens):
        newest = i == tokens - 1
        issued = now - timedelta(hours=tokens - i)
        OutstandingToken.objects.create(
            jti=uuid.uuid4(),
            login_session=session,
            user=user,
            created_at=issued,
            expires_at=issued + timedelta(days=7),
            blacklisted_at=None if newest and not revoked else issued + timedelta(hours=1),
            blacklist_reason="" if newest and not revoked else OutstandingToken.BlacklistReason.ROTATED,
        )
    return session


def rows_make(count: int, user: Any) -> None:
    for i in range(count):
        session = family_make(user, tokens=2, revoked=i % 3 == 0, ip=f"192.0.2.{i % 250 + 1}")
        AuthEvent.objects.create(created_at=token_clock.now(), kind=AuthEvent.Kind.SIGN_IN, user=user, sid=session.sid)


def post_action(client: Client, url: str, action: str, pks: list[Any], **extra: str) -> Any:
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0", **extra})


# -- who may enter ------------------------------------------------------------------


@pytest.mark.parametrize("url", CHANGELISTS.values(), ids=CHANGELISTS.keys())
def test_anonymous_and_non_staff_are_sent_to_the_admin_sign_in(client, user, url):
    assert client.get(url).status_code == 302
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", CHANGELISTS.values(), ids=CHANGELISTS.keys())
def test_view_only_staff_see_every_list_without_actions(viewer_client, user, keys, url):
    rows_make(2, user)
    response = viewer_client.get(url)
    assert response.status_code == 200
    assert b'name="action"' not in response.content


def test_view_only_staff_cannot_revoke_sessions(viewer_client, user):
    session = family_make(user)
    post_action(viewer_client, CHANGELISTS["login sessions"], "revoke_selected", [session.sid])
    session.refresh_from_db()
    assert session.revoked_at is None
    assert not OutstandingToken.objects.filter(login_session=session, blacklist_reason="revoked").exists()


def test_view_only_staff_cannot_blacklist_tokens(viewer_client, user):
    session = family_make(user)
    live = OutstandingToken.objects.get(login_session=session, blacklisted_at__isnull=True)
    post_action(viewer_client, CHANGELISTS["outstanding tokens"], "blacklist_selected", [live.jti])
    live.refresh_from_db()
    assert live.blacklisted_at is None


def test_view_only_staff_cannot_rotate_or_revoke_keys(viewer_client, keys):
    before = dict(SigningKey.objects.values_list("kid", "state"))
    assert viewer_client.get("/admin/tokens/signingkey/rotate/").status_code == 403
    forced = viewer_client.post("/admin/tokens/signingkey/rotate/", {"algorithm": "RS256", "force": "on"})
    assert forced.status_code == 403
    current = SigningKey.objects.get(state=SigningKey.State.CURRENT)
    post_action(viewer_client, CHANGELISTS["signing keys"], "revoke_selected", [current.pk], post="yes")
    assert dict(SigningKey.objects.values_list("kid", "state")) == before
    assert not AuthEvent.objects.filter(kind__in=[AuthEvent.Kind.KEY_ROTATED, AuthEvent.Kind.KEY_REVOKED]).exists()


# -- actions ------------------------------------------------------------------------


def test_revoke_selected_sessions_ends_both_transports_and_records_who(root_client, superuser, user):
    browser = Client()
    browser.force_login(user)
    carried = LoginSession.objects.get(user=user, transport=LoginSession.Transport.SESSION)
    tokens = family_make(user)
    untouched = family_make(user)

    response = post_action(root_client, CHANGELISTS["login sessions"], "revoke_selected", [carried.sid, tokens.sid])

    assert response.status_code == 302
    for session in (carried, tokens):
        session.refresh_from_db()
        assert session.revoke_reason == LoginSession.RevokeReason.ADMIN
    assert not OutstandingToken.objects.filter(login_session=tokens, blacklisted_at__isnull=True).exists()
    untouched.refresh_from_db()
    assert untouched.revoked_at is None
    events = AuthEvent.objects.filter(kind=AuthEvent.Kind.SESSION_REVOKED)
    assert {(e.sid, e.actor_id) for e in events} == {(carried.sid, superuser.pk), (tokens.sid, superuser.pk)}
    # The browser's Django session is gone: it is signed out.
    assert browser.get("/admin/").status_code == 302


def test_blacklist_selected_tokens_records_the_staff_member_and_stops_the_family(root_client, superuser, user, tokens):
    row = OutstandingToken.objects.get(user=user)

    response = post_action(root_client, CHANGELISTS["outstanding tokens"], "blacklist_selected", [row.jti])

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.blacklist_reason == OutstandingToken.BlacklistReason.ADMIN
    event = AuthEvent.objects.get(kind=AuthEvent.Kind.TOKEN_BLACKLISTED)
    assert (event.actor_id, event.user_id, event.sid, event.data["jti"]) == (
        superuser.pk,
        user.pk,
        row.login_session_id,
        str(row.jti),
    )
    # Presenting it now is reuse: the whole login session ends.
    refreshed = APIClient().post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401
    assert LoginSession.objects.get(sid=row.login_session_id).revoked_at is not None


def test_blacklisting_an_already_blacklisted_token_changes_nothing(root_client, user):
    session = family_make(user, revoked=True)
    rows = list(OutstandingToken.objects.filter(login_session=session).values_list("jti", "blacklist_reason"))
    post_action(root_client, CHANGELISTS["outstanding tokens"], "blacklist_selected", [jti for jti, _ in rows])
    assert list(OutstandingToken.objects.filter(login_session=session).values_list("jti", "blacklist_reason")) == rows
    assert not AuthEvent.objects.filter(kind=AuthEvent.Kind.TOKEN_BLACKLISTED).exists()


def test_blacklisted_tokens_are_read_only(root_client, user):
    session = family_make(user, revoked=True)
    row = BlacklistedToken.objects.filter(login_session=session).earliest("created_at")
    base = CHANGELISTS["blacklisted tokens"]
    assert root_client.get(f"{base}add/").status_code == 403
    assert root_client.get(f"{base}{row.pk}/delete/").status_code == 403
    assert root_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    page = root_client.get(f"{base}{row.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    root_client.post(f"{base}{row.pk}/change/", {"blacklisted_at": "", "blacklist_reason": ""})
    assert BlacklistedToken.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("model", ["loginsession", "outstandingtoken", "authevent", "signingkey"])
def test_no_add_or_delete_anywhere(root_client, user, keys, model):
    rows_make(1, user)
    assert root_client.get(f"/admin/tokens/{model}/add/").status_code == 403
    assert b"delete_selected" not in root_client.get(f"/admin/tokens/{model}/").content


def test_audit_trail_is_read_only_even_for_superusers(root_client, user):
    event = AuthEvent.objects.create(created_at=token_clock.now(), kind=AuthEvent.Kind.LOGOUT, user=user)
    url = f"/admin/tokens/authevent/{event.pk}/change/"
    assert root_client.get(url).status_code == 200
    root_client.post(url, {"kind": AuthEvent.Kind.SIGN_IN})
    event.refresh_from_db()
    assert event.kind == AuthEvent.Kind.LOGOUT


def test_rotate_asks_first_and_refuses_a_young_next_key_without_force(root_client, keys):
    before = dict(SigningKey.objects.values_list("kid", "state"))
    page = root_client.get("/admin/tokens/signingkey/rotate/")
    assert page.status_code == 200
    assert b"Yes, rotate the keys" in page.content
    assert b"Rotation will be refused" in page.content

    refused = root_client.post("/admin/tokens/signingkey/rotate/", {"algorithm": "RS256"}, follow=True)

    assert b"Not rotated" in refused.content
    assert dict(SigningKey.objects.values_list("kid", "state")) == before


@pytest.mark.parametrize("force", [False, True])
def test_rotate_promotes_next_and_records_who(root_client, superuser, keys, clock, settings, force):
    upcoming = SigningKey.objects.get(state=SigningKey.State.NEXT)
    if not force:
        clock.advance(seconds=settings.JWT_JWKS_MAX_AGE + 1)
    data = {"algorithm": "ES256", **({"force": "on"} if force else {})}

    response = root_client.post("/admin/tokens/signingkey/rotate/", data)

    assert response.status_code == 302
    upcoming.refresh_from_db()
    assert upcoming.state == SigningKey.State.CURRENT
    assert SigningKey.objects.get(state=SigningKey.State.NEXT).algorithm == "ES256"
    event = AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_ROTATED)
    assert (event.actor_id, event.data["forced"]) == (superuser.pk, force)


def test_revoke_keys_shows_a_confirmation_page_first(root_client, keys):
    current = SigningKey.objects.get(state=SigningKey.State.CURRENT)

    page = post_action(root_client, CHANGELISTS["signing keys"], "revoke_selected", [current.pk])

    assert page.status_code == 200
    assert current.kid.encode() in page.content
    assert b"The current key is among them" in page.content
    current.refresh_from_db()
    assert current.state == SigningKey.State.CURRENT


def test_revoke_keys_after_confirming_records_who(root_client, superuser, keys):
    current = SigningKey.objects.get(state=SigningKey.State.CURRENT)
    upcoming = SigningKey.objects.get(state=SigningKey.State.NEXT)

    # What the confirmation page posts back.
    response = root_client.post(
        CHANGELISTS["signing keys"],
        {"action": "revoke_selected", "_selected_action": [str(current.pk)], "post": "yes"},
    )

    assert response.status_code == 302
    current.refresh_from_db()
    upcoming.refresh_from_db()
    assert (current.state, upcoming.state) == (SigningKey.State.REVOKED, SigningKey.State.CURRENT)
    event = AuthEvent.objects.get(kind=AuthEvent.Kind.KEY_REVOKED)
    assert (event.actor_id, event.data["kid"]) == (superuser.pk, current.kid)


# -- nothing secret on any page ---------------------------------------------------------


def test_no_token_session_key_or_private_key_on_any_admin_page(root_client, api_client, user, keys):
    pair = obtain(api_client).json()
    browser = Client()
    browser.force_login(user)
    key = SigningKey.objects.get(state=SigningKey.State.CURRENT)
    row = OutstandingToken.objects.get(user=user)
    carried = LoginSession.objects.get(user=user, transport=LoginSession.Transport.SESSION)
    rows_make(2, user)
    row.blacklisted_at = token_clock.now()
    row.save()
    pages = [
        *CHANGELISTS.values(),
        f"/admin/tokens/signingkey/{key.pk}/change/",
        "/admin/tokens/signingkey/rotate/",
        f"/admin/tokens/outstandingtoken/{row.pk}/change/",
        f"/admin/tokens/blacklistedtoken/{row.pk}/change/",
        f"/admin/tokens/loginsession/{row.login_session_id}/change/",
        f"/admin/tokens/loginsession/{carried.sid}/change/",
        f"/admin/tokens/authevent/{AuthEvent.objects.earliest('created_at').pk}/change/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/accounts/user/",
    ]
    secrets = [
        key.private_key_encrypted,
        key.private_key_encrypted[:40],
        pair["access"],
        pair["refresh"],
        pair["refresh"].split(".")[2],
        carried.session_key,
        browser.session.session_key,
    ]
    for url in pages:
        html = root_client.get(url).content.decode()
        assert html, url
        assert not PEM_PRIVATE.search(html), url
        for secret in secrets:
            assert secret not in html, url
    # And the page does show what staff need.
    assert key.kid in root_client.get(f"/admin/tokens/signingkey/{key.pk}/change/").content.decode()


# -- searching, filtering, status ----------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "kind"),
    [
        ("  Ada@Example.com ", "email"),
        (str(uuid.UUID(int=7)), "uuid"),
        ("192.0.2.1", "ip"),
        ("2001:db8::1", "ip"),
        ("ada", "text"),
        ("'; drop table x; --", "text"),
    ],
)
def test_search_terms_are_classified(term, kind):
    assert search_term_parse(term)[0] == kind


def _listed(client: Client, url: str) -> set[str]:
    return {str(obj.pk) for obj in client.get(url).context["cl"].result_list}


def test_session_search_by_email_address_and_sid(root_client, user, staff_user):
    mine = family_make(user, ip="192.0.2.7")
    other = family_make(staff_user, ip="192.0.2.8")
    url = CHANGELISTS["login sessions"]
    assert _listed(root_client, f"{url}?q=ADA@example.com") == {str(mine.sid)}
    assert _listed(root_client, f"{url}?q=192.0.2.8") == {str(other.sid)}
    assert _listed(root_client, f"{url}?q={other.sid}") == {str(other.sid)}
    assert _listed(root_client, f"{url}?q=nobody@example.com") == set()
    assert _listed(root_client, f"{url}?q=%25") == set()


def test_token_search_by_email_jti_and_sid(root_client, user, staff_user):
    mine = family_make(user)
    family_make(staff_user)
    url = CHANGELISTS["outstanding tokens"]
    family = {str(pk) for pk in OutstandingToken.objects.filter(login_session=mine).values_list("pk", flat=True)}
    one = next(iter(family))
    assert _listed(root_client, f"{url}?q=ada@example.com") == family
    assert _listed(root_client, f"{url}?q={mine.sid}") == family
    assert _listed(root_client, f"{url}?q={one}") == {one}
    assert _listed(root_client, f"{url}?q=ada") == set()


def test_audit_search_by_email_finds_account_events_and_typed_addresses(root_client, user):
    own = AuthEvent.objects.create(created_at=token_clock.now(), kind=AuthEvent.Kind.SIGN_IN, user=user)
    typed = AuthEvent.objects.create(
        created_at=token_clock.now(), kind=AuthEvent.Kind.SIGN_IN_FAILED, email="ada@example.com"
    )
    AuthEvent.objects.create(created_at=token_clock.now(), kind=AuthEvent.Kind.SIGN_IN_FAILED, email="bob@example.com")
    assert _listed(root_client, "/admin/tokens/authevent/?q=ada@example.com") == {str(own.pk), str(typed.pk)}


def test_token_status_filter_and_column(root_client, user, clock):
    live = family_make(user, tokens=2)
    active = OutstandingToken.objects.get(login_session=live, blacklisted_at__isnull=True)
    rotated = OutstandingToken.objects.get(login_session=live, blacklisted_at__isnull=False)
    stale = family_make(user, tokens=1)
    expired = OutstandingToken.objects.get(login_session=stale)
    OutstandingToken.objects.filter(pk=expired.pk).update(expires_at=clock.now - timedelta(seconds=1))
    expired.refresh_from_db()
    url = CHANGELISTS["outstanding tokens"]
    assert _listed(root_client, f"{url}?status=active") == {str(active.pk)}
    assert _listed(root_client, f"{url}?status=blacklisted") == {str(rotated.pk)}
    assert _listed(root_client, f"{url}?status=expired") == {str(expired.pk)}
    assert outstanding_token_status(active) == "active"
    assert outstanding_token_status(rotated) == "blacklisted (rotated)"
    assert outstanding_token_status(expired) == "expired"
    clock.advance(days=8)
    assert outstanding_token_status(active) == "expired"


def test_session_status_filter_and_column(root_client, user):
    live = family_make(user)
    revoked = family_make(user, revoked=True)
    url = CHANGELISTS["login sessions"]
    # (The staff member's own admin sign-in is a live session too.)
    assert _listed(root_client, f"{url}?status=live&q=ada@example.com") == {str(live.sid)}
    assert _listed(root_client, f"{url}?status=revoked") == {str(revoked.sid)}
    html = root_client.get(url).content.decode()
    assert "revoked (signed out)" in html
    assert "live" in html


# -- scale: bounded counts and a flat number of queries ------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


FLAT_PAGES = [
    *CHANGELISTS.values(),
    "/admin/tokens/loginsession/?status=live&transport__exact=token",
    "/admin/tokens/loginsession/?q=ada@example.com",
    "/admin/tokens/outstandingtoken/?status=active",
    "/admin/tokens/outstandingtoken/?q=ada@example.com",
    "/admin/tokens/blacklistedtoken/?q=ada@example.com",
    "/admin/tokens/authevent/?kind__exact=sign_in",
    "/admin/tokens/authevent/?q=ada@example.com",
]


@pytest.mark.parametrize("url", FLAT_PAGES)
def test_changelist_query_count_stays_flat_as_rows_grow(root_client, user, keys, url, django_assert_max_num_queries):
    rows_make(3, user)
    root_client.get(url)  # warm: content types, permissions
    few = _queries(root_client, url)
    rows_make(30, user)
    with django_assert_max_num_queries(few):
        root_client.get(url)
    assert few <= 8


def test_paginator_counts_exactly_below_the_limit_and_bounds_above(user, monkeypatch):
    rows_make(5, user)
    exact = LargeTablePaginator(OutstandingToken.objects.order_by("-created_at"), 4)
    assert (exact.count, exact.count_note, exact.num_pages) == (10, "", 3)
    monkeypatch.setattr(LargeTablePaginator, "COUNT_LIMIT", 6)
    bounded = LargeTablePaginator(OutstandingToken.objects.filter(user=user).order_by("-created_at"), 4)
    assert (bounded.count, bounded.count_note) == (6, "more than")
    # Past the bounded count is still a page, even before anything read the count.
    fresh = LargeTablePaginator(OutstandingToken.objects.filter(user=user).order_by("-created_at"), 4)
    assert len(fresh.page(3).object_list) == 2
    assert len(bounded.page(9).object_list) == 0


def test_changelist_says_the_count_is_bounded(root_client, user, monkeypatch):
    monkeypatch.setattr(LargeTablePaginator, "COUNT_LIMIT", 3)
    rows_make(3, user)
    html = " ".join(root_client.get("/admin/tokens/outstandingtoken/?status=blacklisted").content.decode().split())
    assert "more than 3 outstanding tokens" in html
    assert "Select all (more than 3) outstanding tokens matching this page's filters" in html


LARGE_TABLES = {name: url for name, url in CHANGELISTS.items() if name != "signing keys"}


@pytest.mark.parametrize("url", LARGE_TABLES.values(), ids=LARGE_TABLES.keys())
def test_no_facet_counts_over_large_tables(root_client, user, keys, url):
    rows_make(1, user)
    root_client.get(url)
    plain = _queries(root_client, url)
    assert _queries(root_client, f"{url}?_facets=True") == plain
    assert b"Show counts" not in root_client.get(url).content


@postgres_only()
def test_paginator_uses_the_planner_estimate_on_an_unfiltered_table(user, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(LargeTablePaginator, "COUNT_LIMIT", 3)
    rows_make(5, user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_outstandingtoken")
    paginator = LargeTablePaginator(OutstandingToken.objects.order_by("-created_at"), 4)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == 10
    assert "reltuples" in captured.captured_queries[0]["sql"]
    assert "COUNT" not in captured.captured_queries[0]["sql"].upper()
    assert paginator.count_note == "about"
