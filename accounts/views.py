"""The account pages (HTML): sign in and out, sign up, sessions, passwords."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.timesince import timesince
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django.views.generic.edit import FormView

from tokens import selectors
from tokens import services as token_services
from tokens.authentication import SESSION_SID_KEY
from tokens.models import LoginSession
from tokens.throttling import SignInThrottleMixin

from . import services
from .browser import browser_session_keep
from .forms import AccountPasswordChangeForm, AccountSetPasswordForm, EmailAuthenticationForm, SignupForm


class LoginView(SignInThrottleMixin, auth_views.LoginView):
    """Sign in with email and password; Django cycles the session key on success."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): a link cannot sign anyone out."""


@method_decorator([sensitive_post_parameters("password1", "password2"), csrf_protect, never_cache], name="dispatch")
class SignupView(FormView):
    """Create an account and sign the new person in."""

    form_class = SignupForm
    template_name = "accounts/signup.html"
    success_url = reverse_lazy("accounts:profile")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            return redirect("accounts:profile")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: SignupForm) -> HttpResponse:
        try:
            user = services.user_create(**form.service_arguments())
        except ValidationError as e:
            # A taken email comes back keyed by field; the password
            # validators' messages belong next to the password.
            form.add_error(None if hasattr(e, "error_dict") else "password1", e)
            return self.form_invalid(form)
        auth_login(self.request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        messages.success(self.request, "Welcome! Your account is ready.")
        return super().form_valid(form)


# -- the account page and its sessions ------------------------------------------

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str) -> str:
    """Name a device the way a person would ("Firefox on Windows"), from its user agent."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return str(browser or system)
    # An app or a script: its product token ("okhttp/4.12") says enough.
    return user_agent.split()[0][:60]


def _ago(moment: datetime, now: datetime) -> str:
    if (now - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, now).split(',')[0]} ago"


@dataclass(frozen=True)
class SessionRow:
    sid: uuid.UUID
    device: str
    user_agent: str
    address: str
    transport: str
    last_used: str
    last_used_at: datetime
    signed_in_at: datetime
    current: bool


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """Show the account and every live login session, each with a way to end it."""
    current_sid = request.session.get(SESSION_SID_KEY)
    now = timezone.now()
    rows = [
        SessionRow(
            sid=s.sid,
            device=device_label(s.user_agent),
            user_agent=s.user_agent,
            address=s.ip or "unknown address",
            transport=s.get_transport_display(),
            last_used=_ago(s.last_used_at, now),
            last_used_at=s.last_used_at,
            signed_in_at=s.created_at,
            current=str(s.sid) == current_sid,
        )
        for s in selectors.login_sessions_live(user_id=request.user.pk)
    ]
    rows.sort(key=lambda r: not r.current)  # this device first, then by last use
    return render(request, "accounts/profile.html", {"login_sessions": rows, "current_sid": current_sid})


@require_POST
@login_required
def session_revoke(request: HttpRequest, sid: uuid.UUID) -> HttpResponse:
    """Sign out one login session of the user (this browser's own, too)."""
    ended = token_services.login_session_revoke(
        sid=sid, reason=LoginSession.RevokeReason.USER_REVOKED, user_id=request.user.pk
    )
    if str(sid) == request.session.get(SESSION_SID_KEY):
        # The Django session is gone with it; flush this request's copy so
        # that nothing writes it back.
        auth_logout(request)
        messages.info(request, "You have been signed out.")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    if ended:
        messages.success(request, "That device has been signed out.")
    else:
        messages.info(request, "That session had already ended.")
    return redirect("accounts:profile")


@require_POST
@login_required
def logout_all(request: HttpRequest) -> HttpResponse:
    """Sign out every login session of the user, this one included."""
    count = token_services.login_sessions_revoke_for_user(
        user_id=request.user.pk, reason=LoginSession.RevokeReason.LOGOUT_ALL
    )
    auth_logout(request)
    noun = "session" if count == 1 else "sessions"
    messages.info(request, f"Signed out everywhere ({count} {noun} ended).")
    return redirect(settings.LOGOUT_REDIRECT_URL)


# -- passwords -------------------------------------------------------------------


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change the password, end every other login session, keep this browser signed in."""

    form_class = AccountPasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def form_valid(self, form: Any) -> HttpResponse:
        ended = services.user_password_change(
            user=form.user,
            new_password=form.cleaned_data["new_password1"],
            keep_sid=self.request.session.get(SESSION_SID_KEY),
        )
        browser_session_keep(self.request, form.user)
        noun = "session was" if ended == 1 else "sessions were"
        messages.success(self.request, f"Your password has been changed. {ended} other {noun} signed out.")
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Set a new password from an emailed link; every login session of the account ends."""

    form_class = AccountSetPasswordForm
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        # Whoever asked for the link may not be the only one who knows the
        # old password, so no session survives a reset.
        services.user_password_change(user=form.user, new_password=form.cleaned_data["new_password1"], keep_sid=None)
        if self.request.user.is_authenticated:
            # This browser's session was just revoked with the rest.
            auth_logout(self.request)
        else:
            del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
