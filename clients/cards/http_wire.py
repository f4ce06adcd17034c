"""A minimal keep-alive HTTP/1.1 client for load generation (bench, simulator).

A general client costs about a millisecond of CPU per request; on a shared two-core machine the load
generator would then steal the CPU it is measuring. This one writes a prepared request and reads
one response with Content-Length: enough for the gateway, nothing more.
"""

from __future__ import annotations

import asyncio


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", "host: gateway", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """A fixed set of connections handed out one request at a time."""

    def __init__(self, host: str, port: int, size: int) -> None:
        assert 1 <= size <= 256
        self._host, self._port, self._size = host, port, size
        self._idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self._opened = 0

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._idle.empty() and self._opened < self._size:
            self._opened += 1
            self._idle.put_nowait(await HttpConnection.open(self._host, self._port))
        connection = await self._idle.get()
        try:
            answer = await connection.post(path, body, headers)
        except (OSError, asyncio.IncompleteReadError):
            connection.close()
            self._opened -= 1
            raise
        self._idle.put_nowait(connection)
        return answer

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
