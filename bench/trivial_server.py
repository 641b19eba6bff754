"""A server that does nothing but answer `{"ok":true}` and close: the load generator's own ceiling.

Run by `python -m bench.run --ceiling` on a listening socket it inherits.
"""

from __future__ import annotations

import asyncio
import socket
import sys

RESPONSE = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"ok":true}'
)


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.transport.write(RESPONSE)
            self.transport.close()


async def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    server = await asyncio.get_running_loop().create_server(Answer, sock=sock, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
