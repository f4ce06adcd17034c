"""A loopback TCP proxy that can cut a gRPC (HTTP/2) connection at a chosen moment.

It forwards bytes both ways and reads the HTTP/2 frame headers as they pass, so a test can cut
the connection exactly:
- `cut_before_request()`: when the client's next request HEADERS frame arrives, close both sides
  without forwarding it (the server never sees the call);
- `cut_after_response()`: when the server's next response HEADERS frame arrives (the handler has
  finished, its commit included), close both sides without forwarding it (the answer is lost);
- `hold_responses()`: forward requests but keep responses back until `release()` or the upstream
  dies (then the client side is closed too): a call stays in flight while the server is killed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

FRAME_HEADER_BYTES = 9
HEADERS_FRAME = 0x1
CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
READ_BYTES = 65536


@dataclass
class ProxyEvents:
    cuts_before_request: int = 0
    cuts_after_response: int = 0
    connections: int = 0
    log: list[str] = field(default_factory=list)


class _FrameReader:
    """Splits a byte stream into whole HTTP/2 frames (after an optional preface)."""

    def __init__(self, preface: bytes = b"") -> None:
        self._buffer = b""
        self._preface_left = len(preface)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        chunks: list[bytes] = []
        if self._preface_left:
            taken = self._buffer[: self._preface_left]
            self._buffer = self._buffer[len(taken):]
            self._preface_left -= len(taken)
            chunks.append(taken)
        while len(self._buffer) >= FRAME_HEADER_BYTES:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < FRAME_HEADER_BYTES + length:
                break
            chunks.append(self._buffer[: FRAME_HEADER_BYTES + length])
            self._buffer = self._buffer[FRAME_HEADER_BYTES + length:]
        return chunks


def _is_stream_headers(chunk: bytes) -> bool:
    if len(chunk) < FRAME_HEADER_BYTES or chunk.startswith(CLIENT_PREFACE[:FRAME_HEADER_BYTES]):
        return False
    stream = int.from_bytes(chunk[5:9], "big") & 0x7FFFFFFF
    return chunk[3] == HEADERS_FRAME and stream != 0


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.events = ProxyEvents()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.target = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._cut_before_request = False
        self._cut_after_response = False
        self._holding = False
        self._released = threading.Event()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    # -- controls ---------------------------------------------------------------------------------

    def cut_before_request(self) -> None:
        with self._lock:
            self._cut_before_request = True

    def cut_after_response(self) -> None:
        with self._lock:
            self._cut_after_response = True

    def hold_responses(self) -> None:
        with self._lock:
            self._holding = True
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._holding = False
        self._released.set()

    def close(self) -> None:
        self._closed = True
        self._released.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    # -- plumbing ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # the server is down: the client sees a refused/closed connection
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self.events.connections += 1
            pair = (client, upstream)
            threading.Thread(target=self._pump_requests, args=pair, daemon=True).start()
            threading.Thread(target=self._pump_responses, args=pair, daemon=True).start()

    def _pump_requests(self, client: socket.socket, upstream: socket.socket) -> None:
        reader = _FrameReader(CLIENT_PREFACE)
        try:
            while data := client.recv(READ_BYTES):
                for chunk in reader.feed(data):
                    if _is_stream_headers(chunk) and self._take("_cut_before_request"):
                        self.events.cuts_before_request += 1
                        self.events.log.append("cut before request")
                        raise ConnectionAbortedError
                    upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _pump_responses(self, client: socket.socket, upstream: socket.socket) -> None:
        reader = _FrameReader()
        try:
            while data := upstream.recv(READ_BYTES):
                for chunk in reader.feed(data):
                    if _is_stream_headers(chunk):
                        if self._take("_cut_after_response"):
                            self.events.cuts_after_response += 1
                            self.events.log.append("cut after response")
                            raise ConnectionAbortedError
                        if self._holding:
                            self.events.log.append("holding a response")
                            self._wait_release(upstream)
                    client.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _wait_release(self, upstream: socket.socket) -> None:
        """Block until released; if the upstream dies meanwhile, give up (the caller closes both)."""
        while not self._released.wait(0.05):
            try:
                if upstream.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    raise ConnectionAbortedError("upstream closed while holding a response")
            except BlockingIOError:
                continue
            except OSError:
                self.events.log.append("dropped a held response")
                raise

    def _take(self, flag: str) -> bool:
        with self._lock:
            armed: bool = getattr(self, flag)
            setattr(self, flag, False)
            return armed


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
