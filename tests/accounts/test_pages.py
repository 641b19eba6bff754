"""The account pages through Django's test client: forms, errors, sessions, passwords."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from conftest import PASSWORD, obtain
from tokens.authentication import SESSION_SID_KEY
from tokens.models import LoginSession

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
NEW_PASSWORD = "a brand new passphrase 2026"


def browser(user_agent: str = FIREFOX, **kwargs: Any) -> Client:
    return Client(HTTP_USER_AGENT=user_agent, **kwargs)


def sign_in(client: Client, email: str = "ada@example.com", password: str = PASSWORD) -> Any:
    response = client.post("/accounts/login/", {"username": email, "password": password})
    assert response.status_code == 302, response.content
    return response


def sid_of(client: Client) -> str:
    return str(client.session[SESSION_SID_KEY])


def field_errors(response: Any, field: str) -> str:
    """Return the text of the error list rendered right under `field`, or ""."""
    html = response.content.decode()
    match = re.search(
        rf'<input[^>]*id="id_{field}"[^>]*>\s*<ul class="field-errors" id="id_{field}_error">(.*?)</ul>', html, re.S
    )
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


def session_alive(client: Client) -> bool:
    return client.get("/accounts/").status_code == 200


# -- every page renders ----------------------------------------------------------------


PUBLIC_PAGES = [
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/accounts/password/reset/sent/",
    "/accounts/password/reset/done/",
]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_page_renders_from_base_with_csrf_and_no_script(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<link rel="stylesheet" href="/static/css/site.css">' in html
    assert "<script" not in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from the internet
    if "<form" in html.split("</header>", 1)[1]:
        assert "csrfmiddlewaretoken" in html


@pytest.mark.parametrize("path", ["/accounts/", "/accounts/password/"])
def test_private_page_sends_anonymous_visitor_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", ["/accounts/logout/", "/accounts/logout/all/"])
def test_sign_out_refuses_get(client: Client, user: Any, path: str) -> None:
    sign_in(client)
    assert client.get(path).status_code == 405
    assert session_alive(client)


# -- sign in -----------------------------------------------------------------------------


def test_sign_in_changes_the_session_key_and_starts_a_login_session(user: Any) -> None:
    client = browser()
    client.get("/accounts/login/")
    anonymous = client.session
    anonymous["probe"] = 1
    anonymous.save()
    before = anonymous.session_key

    response = sign_in(client, email="ADA@example.com")

    assert response["Location"] == "/accounts/"
    after = client.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    login_session = LoginSession.objects.get(user=user)
    assert login_session.transport == LoginSession.Transport.SESSION
    assert login_session.session_key == after
    assert str(login_session.sid) == sid_of(client)


def test_sign_in_error_is_shown_and_nobody_is_signed_in(client: Client, user: Any) -> None:
    response = client.post("/accounts/login/", {"username": "ada@example.com", "password": "wrong"})
    assert response.status_code == 200
    assert "don&#x27;t match an account" in response.content.decode()
    assert not LoginSession.objects.exists()


def test_sign_in_field_error_sits_next_to_its_field(client: Client, db: None) -> None:
    response = client.post("/accounts/login/", {"username": "not an email", "password": ""})
    assert "valid email" in field_errors(response, "username")
    assert "required" in field_errors(response, "password")


def test_signed_in_visitor_skips_the_sign_in_page(client: Client, user: Any) -> None:
    sign_in(client)
    assert client.get("/accounts/login/")["Location"] == "/accounts/"


# -- sign up -----------------------------------------------------------------------------


def test_sign_up_creates_the_account_and_signs_in() -> None:
    client = browser()
    response = client.post(
        "/accounts/signup/",
        {"email": " Grace@Example.com ", "name": "Grace", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    user = User.objects.get(email="grace@example.com")
    assert user.name == "Grace"
    assert user.check_password(NEW_PASSWORD)
    login_session = LoginSession.objects.get(user=user)
    assert login_session.session_key == client.cookies["sessionid"].value
    page = client.get("/accounts/")
    assert page.status_code == 200
    assert "Welcome" in page.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "nope", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, "email", "valid email"),
        ({"email": "ADA@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, "email", "already exists"),
        ({"email": "new@example.com", "password1": "short", "password2": "short"}, "password1", "too short"),
        (
            {"email": "new@example.com", "password1": "1234567890123", "password2": "1234567890123"},
            "password1",
            "numeric",
        ),
        ({"email": "new@example.com", "password1": "password123", "password2": "password123"}, "password1", "common"),
        (
            {"email": "newperson@example.com", "password1": "newperson@example", "password2": "newperson@example"},
            "password1",
            "too similar",
        ),
        (
            {"email": "new@example.com", "password1": NEW_PASSWORD, "password2": "different"},
            "password2",
            "do not match",
        ),
        ({"email": "", "password1": "", "password2": ""}, "email", "required"),
    ],
    ids=["bad-email", "taken-email", "short", "numeric", "common", "similar", "mismatch", "empty"],
)
def test_sign_up_error_sits_next_to_its_field(
    client: Client, user: Any, data: dict[str, str], field: str, message: str
) -> None:
    response = client.post("/accounts/signup/", data)
    assert response.status_code == 200
    assert message in field_errors(response, field)
    assert User.objects.count() == 1
    assert "_auth_user_id" not in client.session


def test_sign_up_keeps_what_was_typed_but_not_the_password(client: Client, db: None) -> None:
    response = client.post(
        "/accounts/signup/", {"email": "x@example.com", "name": "X", "password1": "short", "password2": "short"}
    )
    html = response.content.decode()
    assert 'value="x@example.com"' in html
    assert 'value="short"' not in html


def test_signed_in_visitor_skips_sign_up(client: Client, user: Any) -> None:
    sign_in(client)
    assert client.get("/accounts/signup/")["Location"] == "/accounts/"


# -- the account page ------------------------------------------------------------------


def test_account_page_lists_each_live_session_with_device_address_last_use_and_a_button(
    user: Any, api_client: APIClient
) -> None:
    laptop = browser(FIREFOX, REMOTE_ADDR="203.0.113.7")
    phone = browser(IPHONE, REMOTE_ADDR="198.51.100.20")
    sign_in(laptop)
    sign_in(phone)
    obtain(api_client, HTTP_USER_AGENT="okhttp/4.12.0")
    ended = browser()
    sign_in(ended)
    ended.post("/accounts/logout/")

    html = laptop.get("/accounts/").content.decode()

    assert html.count("data-sid=") == 3
    for text in ("Firefox on Windows", "Safari on iPhone", "okhttp/4.12.0", "203.0.113.7", "198.51.100.20"):
        assert text in html
    assert html.count("Last used") == 3
    assert html.count("This browser") == 1
    for login_session in LoginSession.objects.filter(revoked_at__isnull=True):
        assert f'action="/accounts/sessions/{login_session.sid}/revoke/"' in html
    assert 'action="/accounts/logout/all/"' in html
    assert html.count("csrfmiddlewaretoken") == 5  # top bar, three sessions, everywhere


def test_sign_out_one_session_ends_that_browser(user: Any, django_capture_on_commit_callbacks: Any) -> None:
    laptop, phone = browser(), browser(IPHONE)
    sign_in(laptop)
    sign_in(phone)
    phone_key = phone.cookies["sessionid"].value

    with django_capture_on_commit_callbacks(execute=True):
        response = laptop.post(f"/accounts/sessions/{sid_of(phone)}/revoke/", follow=True)

    assert "That device has been signed out." in response.content.decode()
    assert LoginSession.objects.get(session_key=phone_key).revoke_reason == LoginSession.RevokeReason.USER_REVOKED
    assert not Session.objects.filter(session_key=phone_key).exists()
    assert not session_alive(phone)
    assert session_alive(laptop)


def test_sign_out_this_session_from_its_own_row_signs_this_browser_out(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = browser()
    sign_in(client)
    sid = sid_of(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/accounts/sessions/{sid}/revoke/")
    assert response["Location"] == "/accounts/login/"
    assert LoginSession.objects.get(sid=sid).revoke_reason == LoginSession.RevokeReason.USER_REVOKED
    assert not session_alive(client)


def test_sign_out_cannot_touch_another_users_session(
    user: Any, staff_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mine, theirs = browser(), browser()
    sign_in(mine)
    sign_in(theirs, email="staff@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = mine.post(f"/accounts/sessions/{sid_of(theirs)}/revoke/", follow=True)
    assert "already ended" in response.content.decode()
    assert session_alive(theirs)
    assert LoginSession.objects.filter(user=staff_user, revoked_at__isnull=True).count() == 1


def test_sign_out_needs_the_csrf_token(user: Any) -> None:
    client = browser(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    client.post(
        "/accounts/login/",
        {"username": "ada@example.com", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    sid = sid_of(client)
    for path in (f"/accounts/sessions/{sid}/revoke/", "/accounts/logout/all/", "/accounts/logout/"):
        assert client.post(path).status_code == 403
    assert LoginSession.objects.get(sid=sid).revoked_at is None


def test_sign_out_everywhere_ends_every_session_including_this_one(
    user: Any, tokens: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    this, other = browser(), browser(IPHONE)
    sign_in(this)
    sign_in(other)

    with django_capture_on_commit_callbacks(execute=True):
        response = this.post("/accounts/logout/all/", follow=True)

    assert response.redirect_chain == [("/accounts/login/", 302)]
    assert "Signed out everywhere (3 sessions ended)." in response.content.decode()
    assert not LoginSession.objects.filter(revoked_at__isnull=True).exists()
    assert set(LoginSession.objects.values_list("revoke_reason", flat=True)) == {LoginSession.RevokeReason.LOGOUT_ALL}
    assert not session_alive(this)
    assert not session_alive(other)
    bearer = APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert bearer.get("/api/me/").status_code == 401


def test_top_bar_sign_out_ends_the_login_session_and_django_session(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = browser()
    sign_in(client)
    sid, key = sid_of(client), client.cookies["sessionid"].value
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/"
    assert LoginSession.objects.get(sid=sid).revoke_reason == LoginSession.RevokeReason.LOGOUT
    assert not Session.objects.filter(session_key=key).exists()


def test_revoking_from_the_api_ends_the_browser_session(
    user: Any, auth_client: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    client = browser()
    sign_in(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_client.delete(f"/api/sessions/{sid_of(client)}/").status_code == 204
    assert not session_alive(client)


# -- password change -----------------------------------------------------------------


def test_password_change_ends_every_other_session_but_keeps_this_browser(
    user: Any, tokens: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    this, other = browser(), browser(IPHONE)
    sign_in(this)
    sign_in(other)
    this_sid, old_key = sid_of(this), this.cookies["sessionid"].value

    with django_capture_on_commit_callbacks(execute=True):
        response = this.post(
            "/accounts/password/",
            {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
            follow=True,
        )

    assert response.redirect_chain == [("/accounts/", 302)]
    assert "2 other sessions were signed out" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    # This browser: still signed in, on a new session key its login session follows.
    assert session_alive(this)
    new_key = this.cookies["sessionid"].value
    assert new_key != old_key
    kept = LoginSession.objects.get(sid=this_sid)
    assert kept.revoked_at is None and kept.session_key == new_key
    # The other browser and the token client: signed out.
    assert not session_alive(other)
    assert set(LoginSession.objects.exclude(sid=this_sid).values_list("revoke_reason", flat=True)) == {
        LoginSession.RevokeReason.PASSWORD_CHANGED
    }
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").get("/api/me/").status_code == 401
    assert APIClient().post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json").status_code == 401


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
            "old_password",
            "not your current password",
        ),
        ({"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"}, "new_password1", "too short"),
        ({"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": "other"}, "new_password2", "didn"),
    ],
    ids=["wrong-old", "weak", "mismatch"],
)
def test_password_change_error_sits_next_to_its_field(
    client: Client, user: Any, data: dict[str, str], field: str, message: str
) -> None:
    sign_in(client)
    response = client.post("/accounts/password/", data)
    assert response.status_code == 200
    assert message in field_errors(response, field)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert LoginSession.objects.filter(revoked_at__isnull=True).count() == 1


# -- password reset ------------------------------------------------------------------


def _reset_link() -> str:
    assert len(mail.outbox) == 1
    match = re.search(r"https?://testserver(/accounts/password/reset/\S+/)", str(mail.outbox[0].body))
    assert match, mail.outbox[0].body
    return match.group(1)


def test_password_reset_by_email_ends_every_session(
    user: Any, tokens: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    signed_in = browser()
    sign_in(signed_in)
    client = browser()

    response = client.post("/accounts/password/reset/", {"email": "Ada@Example.com"})
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox[0].to == ["ada@example.com"]
    assert "Reset your password" in mail.outbox[0].subject

    form_page = client.get(_reset_link(), follow=True)
    assert form_page.status_code == 200
    assert "Choose a new password" in form_page.content.decode()
    set_password_url = form_page.redirect_chain[-1][0]
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done["Location"] == "/accounts/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not LoginSession.objects.filter(revoked_at__isnull=True).exists()
    assert not session_alive(signed_in)
    # The link works once.
    assert "expired" in client.get(_reset_link(), follow=True).content.decode()
    sign_in(browser(), password=NEW_PASSWORD)


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client: Client, db: None) -> None:
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


def test_password_reset_weak_password_error_sits_next_to_its_field(client: Client, user: Any) -> None:
    client.post("/accounts/password/reset/", {"email": "ada@example.com"})
    form_page = client.get(_reset_link(), follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": "short", "new_password2": "short"})
    assert "too short" in field_errors(response, "new_password1")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# -- error pages ----------------------------------------------------------------------------


def test_missing_page_is_a_styled_404(client: Client, db: None) -> None:
    response = client.get("/accounts/nowhere/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert "/static/css/site.css" in response.content.decode()


def test_stale_form_is_a_styled_403_that_changes_nothing(user: Any) -> None:
    client = browser(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "Please try again" in response.content.decode()
    assert not LoginSession.objects.exists()
