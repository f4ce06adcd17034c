"""One HTTP POST to a webhook receiver, bounded in every dimension.

Standard library only (http.client): one request per connection, the checked address pinned (no
second DNS lookup), redirects never followed (a 3xx is a failed attempt), a total deadline across
connect, send and every read, and at most `response_bytes_max` of the answer read.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from ledger.v1 import webhooks_pb2
from ledger_server.events.webhooks.retry_schedule import RETRY_AFTER_STATUSES, parse_retry_after
from ledger_server.events.webhooks.url_policy import IPAddress, UrlPolicy, UrlRefusedError

EXCERPT_BYTES_MAX = 1024
ERROR_CHARS_MAX = 512
USER_AGENT = "platform-ledger-webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    outcome: int  # ledger.v1.WebhookAttemptOutcome
    status_code: int
    duration_ms: int
    error: str = ""
    response_excerpt: str = ""
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == webhooks_pb2.WEBHOOK_ATTEMPT_SUCCEEDED

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an already checked address; the Host header keeps the URL's host name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to an already checked address, verifying the certificate against the URL's host name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((str(self._address), self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpSender:
    def __init__(self, policy: UrlPolicy, timeout_s: float = 15.0, response_bytes_max: int = 64 * 1024) -> None:
        assert 0 < timeout_s <= 120 and 0 < response_bytes_max <= 1024 * 1024
        self._policy = policy
        self._timeout_s = timeout_s
        self._response_bytes_max = response_bytes_max
        self._tls = ssl.create_default_context()

    def post(self, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
        started = time.monotonic()
        deadline = started + self._timeout_s

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            parts = self._policy.check_url(url)
            host = parts.hostname
            assert host is not None
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = self._policy.resolve(host, port)[0]
            return self._exchange(parts.scheme, host, port, address, parts, headers, body, deadline, elapsed_ms)
        except UrlRefusedError as refused:
            return AttemptResult(webhooks_pb2.WEBHOOK_ATTEMPT_ADDRESS_REFUSED, 0, elapsed_ms(), _bounded(str(refused)))
        except TimeoutError:
            return AttemptResult(webhooks_pb2.WEBHOOK_ATTEMPT_TIMED_OUT, 0, elapsed_ms(),
                                 f"no complete answer within {self._timeout_s:g} s")
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as error:
            return AttemptResult(webhooks_pb2.WEBHOOK_ATTEMPT_CONNECTION_FAILED, 0, elapsed_ms(),
                                 _bounded(f"{type(error).__name__}: {error}"))

    def _exchange(
        self, scheme: str, host: str, port: int, address: IPAddress, parts: urllib.parse.SplitResult,
        headers: dict[str, str], body: bytes, deadline: float, elapsed_ms: Callable[[], int],
    ) -> AttemptResult:
        remaining = max(0.001, deadline - time.monotonic())
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = _PinnedHTTPSConnection(host, port, address, remaining, self._tls)
        else:
            connection = _PinnedHTTPConnection(host, port, address, remaining)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            connection.request("POST", path, body=body, headers={
                **headers, "content-type": "application/json", "user-agent": USER_AGENT, "connection": "close",
            })
            _set_timeout(connection, deadline)
            response = connection.getresponse()
            content = self._read_bounded(connection, response, deadline)
        finally:
            connection.close()
        status = response.status
        excerpt = content[:EXCERPT_BYTES_MAX].decode("utf-8", errors="replace")
        retry_after = parse_retry_after(response.getheader("retry-after")) if status in RETRY_AFTER_STATUSES else None
        if 200 <= status < 300:
            return AttemptResult(webhooks_pb2.WEBHOOK_ATTEMPT_SUCCEEDED, status, elapsed_ms(), "", excerpt)
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return AttemptResult(webhooks_pb2.WEBHOOK_ATTEMPT_HTTP_ERROR, status, elapsed_ms(), error, excerpt,
                             retry_after)

    def _read_bounded(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
    ) -> bytes:
        """At most response_bytes_max bytes; the rest is never read (the connection is closed)."""
        chunks: list[bytes] = []
        size = 0
        while size < self._response_bytes_max:
            _set_timeout(connection, deadline)
            chunk = response.read1(min(16 * 1024, self._response_bytes_max - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)


def _set_timeout(connection: http.client.HTTPConnection, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _bounded(text: str) -> str:
    return text if len(text) <= ERROR_CHARS_MAX else text[: ERROR_CHARS_MAX - 1] + "…"
