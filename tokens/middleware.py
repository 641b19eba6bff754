"""Keep a browser login session's "last used" current without a write per page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from . import clock, services
from .authentication import SESSION_SID_KEY
from .requests import client_info

logger = logging.getLogger(__name__)

# A browser's last use is shown to the minute-ish; writing it more often
# than this would cost a write per page for nothing.
TOUCH_INTERVAL = timedelta(minutes=5)


class LoginSessionActivityMiddleware:
    """Record the use of a browser login session, at most once per TOUCH_INTERVAL.

    Token clients record theirs on every refresh. Requests with an
    Authorization header or no session cookie are left alone, so bearer
    API requests keep their one query.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "HTTP_AUTHORIZATION" in request.META or settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return response
        try:
            session = getattr(request, "session", None)
            sid = session.get(SESSION_SID_KEY) if session is not None else None
            if sid:
                services.login_session_touch(
                    sid=sid, client=client_info(request), now=clock.now(), interval=TOUCH_INTERVAL
                )
        except DatabaseError:
            # Bookkeeping only: the request already has its answer (a 503 if
            # the database is what failed), which this must not replace.
            logger.warning("could not record the use of a login session", exc_info=True)
        return response
