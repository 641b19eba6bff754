"""Authentication backend: Django's ModelBackend, looked up by normalised email."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


class EmailBackend(ModelBackend):
    """Authenticate with `email` (or `username`, for forms that say so) and a password.

    ModelBackend runs the default hasher once for an unknown address, so a
    wrong password and an unknown email cost the same time.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get("email")
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        return super().authenticate(request, username=username, password=password)
