"""The one clock of the tokens app, so that tests can move time without sleeping."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """Return the current aware UTC time."""
    return timezone.now()
