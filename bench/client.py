"""Two HTTP/1.1 clients with one interface: a minimal asyncio protocol client and httpx.

gunicorn's sync workers close the connection after every response, so each
request is a fresh TCP connection whatever the client. httpx spends most of a
core on its own machinery at ~1,500 requests/s, which on a 2-core machine
caps the measurement; the protocol client does only what these requests
need (Content-Length bodies, `Connection: close`) and measured several times
faster against a trivial server (`python -m bench.run --ceiling`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

HALF_CLOSE = True


class HttpError(Exception):
    """The server answered with something that is not an HTTP/1.1 response."""


class Client(Protocol):
    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class _Exchange(asyncio.Protocol):
    """One request/response over its own connection."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[int, bytes]]) -> None:
        self.request = request
        self.done = done
        self.buffer = bytearray()
        self.header_end = -1
        self.length = -1
        self.status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)
        if HALF_CLOSE:
            # The request is all we will send: say so now. gunicorn's sync
            # worker lingers after its response until the client's FIN
            # arrives (a graceful close), so a FIN sent only once this busy
            # event loop gets round to it would hold the worker for nothing.
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.header_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.header_end = end + 4
            head = bytes(self.buffer[:end]).split(b"\r\n")
            try:
                self.status = int(head[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                self._finish(HttpError(head[0][:80]))
                return
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.length = int(value.strip())
        if self.length >= 0 and len(self.buffer) - self.header_end >= self.length:
            self._finish(None)

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            if error is not None:
                self.done.set_exception(error)
            else:
                body = bytes(self.buffer[self.header_end : self.header_end + self.length])
                self.done.set_result((self.status, body))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self.done.set_exception(exc)
        elif self.header_end >= 0 and self.length < 0:
            # No Content-Length: the body runs to the end of the connection.
            self.done.set_result((self.status, bytes(self.buffer[self.header_end :])))
        else:
            self.done.set_exception(HttpError("connection closed before the response was complete"))


class RawClient:
    """A fresh connection per request, `Connection: close`, Content-Length bodies."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}".encode()

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [
            f"{method} {path} HTTP/1.1".encode(),
            b"Host: " + self.host_header,
            b"Connection: close",
            b"User-Agent: bench",
        ]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode())
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        request = b"\r\n".join(lines) + b"\r\n\r\n" + body
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        await loop.create_connection(lambda: _Exchange(request, done), self.host, self.port)
        return await done

    async def close(self) -> None:
        return None


class HttpxClient:
    """httpx.AsyncClient, for comparison."""

    def __init__(self, host: str, port: int, *, concurrency: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            headers={"User-Agent": "bench"},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=30.0,
        )

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        response = await self._client.request(method, path, headers=headers, content=body or None)
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()


def client_make(kind: str, host: str, port: int, *, concurrency: int) -> Client:
    """Return the client named `kind` ("raw" or "httpx")."""
    if kind == "raw":
        return RawClient(host, port)
    if kind == "httpx":
        return HttpxClient(host, port, concurrency=concurrency)
    raise ValueError(f"unknown client {kind!r}")
