"""Keeping a browser's Django session in step with its login session."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.http import HttpRequest

from tokens.authentication import SESSION_SID_KEY
from tokens.services import login_session_bind_browser


def browser_session_keep(request: HttpRequest, user: Any) -> None:
    """Keep the browser that changed its password signed in.

    Django rotates the session key and auth hash; the login session must
    follow the new key, or revoking it later would miss the browser.
    """
    if not hasattr(request, "session"):
        return
    update_session_auth_hash(request, user)
    sid = request.session.get(SESSION_SID_KEY)
    if sid and request.session.session_key:
        login_session_bind_browser(sid=sid, session_key=request.session.session_key)
