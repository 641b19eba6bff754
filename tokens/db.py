"""The two database helpers of the hot paths, on any backend.

On PostgreSQL (`config.db.postgresql`) they give prepared statements and
pipelining; on other backends an ordinary cursor and no batching, so the
same code runs everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


def prepared_cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor whose statements the database keeps prepared, where the backend can."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()


@contextmanager
def pipeline(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Send the statements executed inside in one batch, where the backend can.

    Inside, a statement's `rowcount` is known only once a later fetch (or the
    end of the block) has waited for the answers.
    """
    make = getattr(connection, "pipeline", None)
    if make is None:
        yield
        return
    with make():
        yield
