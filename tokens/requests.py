"""What the tokens app reads off an HTTP request."""

from __future__ import annotations

from typing import Any

from .services import ClientInfo


def client_info(request: Any) -> ClientInfo:
    """Return the client address and user agent of a request.

    The address is REMOTE_ADDR: behind a reverse proxy, configure the proxy
    to set it (gunicorn's `forwarded_allow_ips`), never trust a client header.
    """
    meta = getattr(request, "META", {})
    return ClientInfo(ip=meta.get("REMOTE_ADDR") or None, user_agent=str(meta.get("HTTP_USER_AGENT", ""))[:300])
