"""The base of every error a service raises for the client to see.

Kept free of DRF imports so that any app can subclass it at import time;
config.errors turns these into JSON responses.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error a service raises for the client to see."""

    status_code: int = 400
    code: str = "invalid"
    detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        if code is not None:
            self.code = code
        super().__init__(self.detail)
