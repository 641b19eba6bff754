"""The account pages in headless Chromium against the auth server running as a real process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "a long and unusual passphrase 42"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1200, "height": 900}}


def snap(page: Any, folder: Path | None, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_up(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_email", email)
    page.fill("#id_name", "Grace Hopper")
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    page.click("button[type=submit].primary")


def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/accounts/")


def session_count(page: Any) -> int:
    return int(page.locator("li.session[data-sid]").count())


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_sign_up_shows_errors_next_to_fields_then_signs_in(
    live_server_process: Any, new_context: Any, unique_email: Any, screenshot_dir: Path | None, device: dict[str, Any]
) -> None:
    base = live_server_process.url
    name = "phone" if device is PHONE else "desktop"
    page = new_context(**device).new_page()

    sign_up(page, base, "not-an-email", password="123")
    errors = page.locator(".field.has-error .field-errors")
    assert page.url == f"{base}/accounts/signup/"
    assert "valid email" in page.locator("#id_email_error").inner_text()
    password_errors = page.locator("#id_password1_error").inner_text()
    assert "too short" in password_errors and "entirely numeric" in password_errors
    assert errors.count() == 2
    snap(page, screenshot_dir, f"signup-errors-{name}")

    email = unique_email("signup")
    sign_up(page, base, email)
    page.wait_for_url(f"{base}/accounts/")
    assert "Welcome" in page.locator(".messages").inner_text()
    assert page.locator("h1").inner_text() == "Grace Hopper"
    assert session_count(page) == 1
    assert page.locator("li.session.current .badge").inner_text() == "This browser"
    snap(page, screenshot_dir, f"account-{name}")

    # The same address again is refused, next to the email field.
    other = new_context(**device).new_page()
    sign_up(other, base, email.upper())
    assert "already exists" in other.locator("#id_email_error").inner_text()


def test_sign_in_sign_out_one_session_then_everywhere(
    live_server_process: Any, new_context: Any, unique_email: Any, screenshot_dir: Path | None
) -> None:
    base = live_server_process.url
    email = unique_email("sessions")
    laptop = new_context(**DESKTOP).new_page()
    sign_up(laptop, base, email)
    laptop.wait_for_url(f"{base}/accounts/")

    # A wrong password keeps the visitor on the sign-in page with a message.
    phone = new_context(**PHONE).new_page()
    phone.goto(f"{base}/accounts/login/")
    phone.fill("#id_username", email)
    phone.fill("#id_password", "not the password")
    phone.click("button[type=submit].primary")
    assert "don't match an account" in phone.locator(".alert").inner_text()
    snap(phone, screenshot_dir, "login-error-phone")

    sign_in(phone, base, email)
    assert session_count(phone) == 2
    snap(phone, screenshot_dir, "account-two-sessions-phone")

    laptop.reload()
    assert session_count(laptop) == 2
    snap(laptop, screenshot_dir, "account-two-sessions-desktop")

    # The laptop signs the phone out.
    laptop.click("li.session:not(.current) button")
    laptop.wait_for_url(f"{base}/accounts/")
    assert "signed out" in laptop.locator(".messages").inner_text()
    assert session_count(laptop) == 1
    phone.goto(f"{base}/accounts/")
    assert phone.url.startswith(f"{base}/accounts/login/")

    # A third device, then "sign out everywhere" from the laptop ends both.
    tablet = new_context(**DESKTOP).new_page()
    sign_in(tablet, base, email)
    laptop.reload()
    assert session_count(laptop) == 2
    laptop.click("button.danger")
    laptop.wait_for_url(f"{base}/accounts/login/")
    assert "Signed out everywhere" in laptop.locator(".messages").inner_text()
    for page in (laptop, tablet):
        page.goto(f"{base}/accounts/")
        assert page.url.startswith(f"{base}/accounts/login/")


def test_password_change_signs_out_the_other_browser_only(
    live_server_process: Any, new_context: Any, unique_email: Any, screenshot_dir: Path | None
) -> None:
    base = live_server_process.url
    email = unique_email("password")
    this = new_context(**DESKTOP).new_page()
    sign_up(this, base, email)
    this.wait_for_url(f"{base}/accounts/")
    other = new_context(**DESKTOP).new_page()
    sign_in(other, base, email)

    this.goto(f"{base}/accounts/password/")
    this.fill("#id_old_password", "wrong")
    this.fill("#id_new_password1", "short")
    this.fill("#id_new_password2", "short")
    this.click("button[type=submit].primary")
    assert this.locator("#id_old_password_error").count() == 1
    snap(this, screenshot_dir, "password-change-errors-desktop")

    new_password = "another long passphrase 77"
    this.fill("#id_old_password", PASSWORD)
    this.fill("#id_new_password1", new_password)
    this.fill("#id_new_password2", new_password)
    this.click("button[type=submit].primary")
    this.wait_for_url(f"{base}/accounts/")
    assert "1 other session was signed out" in this.locator(".messages").inner_text()
    assert session_count(this) == 1

    other.goto(f"{base}/accounts/")
    assert other.url.startswith(f"{base}/accounts/login/")
    sign_in(other, base, email, password=new_password)


def reset_link_from_console_email(log: Path, email: str) -> str:
    """Find the link of the last reset email to `email` in the server's console output."""
    text = log.read_text(errors="replace")
    start = text.rindex(f"To: {email}")
    match = re.search(r"http://\S+/accounts/password/reset/\S+/\S+/", text[start:])
    assert match, text[start:]
    return match.group(0)


def test_password_reset_by_email_signs_out_everywhere(
    live_server_process: Any, new_context: Any, unique_email: Any, screenshot_dir: Path | None
) -> None:
    base = live_server_process.url
    email = unique_email("reset")
    signed_in = new_context(**DESKTOP).new_page()
    sign_up(signed_in, base, email)
    signed_in.wait_for_url(f"{base}/accounts/")

    page = new_context(**PHONE).new_page()
    page.goto(f"{base}/accounts/login/")
    page.click("text=Forgot your password?")
    page.wait_for_url(f"{base}/accounts/password/reset/")
    snap(page, screenshot_dir, "password-reset-phone")
    page.fill("#id_email", email)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/accounts/password/reset/sent/")
    assert page.locator("h1").inner_text() == "Check your email"

    page.goto(reset_link_from_console_email(live_server_process.log_path, email))
    assert page.locator("h1").inner_text() == "Choose a new password"
    new_password = "reset to a fresh passphrase 9"
    page.fill("#id_new_password1", new_password)
    page.fill("#id_new_password2", new_password)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/accounts/password/reset/done/")
    snap(page, screenshot_dir, "password-reset-complete-phone")

    signed_in.goto(f"{base}/accounts/")
    assert signed_in.url.startswith(f"{base}/accounts/login/")
    sign_in(page, base, email, password=new_password)
