"""The account pages (HTML)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tokens import selectors
from tokens.authentication import SESSION_SID_KEY

from .forms import EmailAuthenticationForm


class LoginView(auth_views.LoginView):
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): a link cannot sign anyone out."""


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    sessions = selectors.login_sessions_live(user_id=request.user.pk)
    return render(
        request,
        "accounts/profile.html",
        {"login_sessions": sessions, "current_sid": request.session.get(SESSION_SID_KEY)},
    )
