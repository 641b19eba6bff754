"""How key commands print a signing key: a table row or a JSON object, never private material."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokens.models import SigningKey


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_as_dict(key: SigningKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "state": key.state,
        "created_at": _iso(key.created_at),
        "activated_at": _iso(key.activated_at),
        "retired_at": _iso(key.retired_at),
        "revoked_at": _iso(key.revoked_at),
    }


def key_as_line(key: SigningKey) -> str:
    def short(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"

    return (
        f"{key.kid:<44}  {key.algorithm:<6}  {key.state:<8}  created {short(key.created_at)}  "
        f"activated {short(key.activated_at)}  retired {short(key.retired_at)}"
    )
