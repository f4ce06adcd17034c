"""A real HTTP webhook receiver for tests: records every request, answers as each path is told to.

Behaviours per path: a fixed status, a status with headers (Retry-After, Location), a random
mix of failures and timeouts (for chaos tests), or a huge body. Every request is kept with its
headers and raw body, and whether it verified against the secrets the test registered.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ledger_client.webhooks import WebhookVerificationError, verify


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    timestamp: int
    signature: str
    body: bytes
    status: int  # what the receiver answered (0: it stalled past the sender's timeout)
    verified_with: tuple[str, ...]  # the registered secrets that verified it
    at: float

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def sequence(self) -> int:
        return int(self.document["data"]["sequence"])


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    fail_ratio: float = 0.0      # answer 500
    stall_ratio: float = 0.0     # sleep `stall_s`, then answer 500 (the sender gave up already)
    stall_s: float = 0.0
    reject_unverified: bool = False  # answer 401 unless a registered secret verifies the request
    success_delay_s: float = 0.0     # a 2xx is recorded, then sent this much later (a sender killed
                                     # meanwhile never learns of it and sends the event again)


class WebhookReceiver:
    def __init__(self, seed: int = 7) -> None:
        self.received: list[Received] = []
        self.secrets: dict[str, list[str]] = {}  # path -> secrets to verify with
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def behave(self, path: str, behaviour: Behaviour) -> None:
        with self._lock:
            self.behaviours[path] = behaviour

    def requests(self, path: str | None = None, where: Callable[[Received], bool] | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if (path is None or r.path == path) and (where is None or where(r))]

    def successes(self, path: str) -> list[Received]:
        return self.requests(path, lambda r: 200 <= r.status < 300)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length", "0"))
        body = request.rfile.read(length)
        path = request.path
        with self._lock:
            behaviour = self.behaviours.get(path, Behaviour())
            secrets = list(self.secrets.get(path, []))
            roll = self._random.random()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = []
        for secret in secrets:
            try:
                verify(secret, body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        status = behaviour.status
        if behaviour.reject_unverified and not verified:
            status = 401
        stalled = False
        if roll < behaviour.stall_ratio:
            stalled, status = True, 500
        elif roll < behaviour.stall_ratio + behaviour.fail_ratio:
            status = 500
        record = Received(
            path, headers.get("webhook-id", ""), int(headers.get("webhook-timestamp", "0") or 0),
            headers.get("webhook-signature", ""), body, 0 if stalled else status, tuple(verified), time.monotonic(),
        )
        with self._lock:
            self.received.append(record)
        if stalled:
            time.sleep(behaviour.stall_s)
        elif 200 <= status < 300:
            time.sleep(behaviour.success_delay_s)
        try:
            request.send_response(status)
            for key, value in behaviour.headers.items():
                request.send_header(key, value)
            request.send_header("content-length", str(len(behaviour.body)))
            request.end_headers()
            request.wfile.write(behaviour.body)
        except OSError:
            pass  # the sender gave up (timeout) and closed the connection
