"""The audit trail: an AuthEvent row and a structured log line for each security event."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from . import clock
from .models import AuthEvent

logger = logging.getLogger("audit")

Kind = AuthEvent.Kind


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
    logger.info(
        json.dumps(
            {
                "event": kind,
                "user": user_id,
                "actor": actor_id,
                "email": email[:254] or None,
                "sid": str(sid) if sid else None,
                "ip": ip,
                **(data or {}),
            },
            default=str,
            separators=(",", ":"),
        )
    )
    return event
