"""The audit trail: an AuthEvent row and a structured log line for each security event."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from . import clock
from .models import AuthEvent

logger = logging.getLogger("audit")

Kind = AuthEvent.Kind


def auth_event_log(event: AuthEvent) -> None:
    """Write the log line of an event recorded by other means (the refresh hot path)."""
    _log(event)


def _log(event: AuthEvent) -> None:
    logger.info(
        json.dumps(
            {
                "event": event.kind,
                "user": event.user_id,
                "actor": event.actor_id,
                "email": event.email or None,
                "sid": str(event.sid) if event.sid else None,
                "ip": event.ip,
                **event.data,
            },
            default=str,
            separators=(",", ":"),
        )
    )


def auth_event_record(
    *,
    kind: str,
    user_id: Any = None,
    actor_id: Any = None,
    email: str = "",
    sid: str | uuid.UUID | None = None,
    ip: str | None = None,
    user_agent: str = "",
    data: dict[str, Any] | None = None,
) -> AuthEvent:
    """Record one security event. `data` must hold identifiers only, never secrets."""
    event = AuthEvent.objects.create(
        created_at=clock.now(),
        kind=kind,
        user_id=user_id,
        actor_id=actor_id,
        email=email[:254],
        sid=sid,
        ip=ip,
        user_agent=user_agent[:300],
        data=data or {},
    )
    _log(event)
    return event


def auth_events_record(events: Iterable[AuthEvent]) -> list[AuthEvent]:
    """Record many events of one bulk action in one INSERT, each with its own log line."""
    created = AuthEvent.objects.bulk_create(list(events))
    for event in created:
        _log(event)
    return created
