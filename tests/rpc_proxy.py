"""A JSON-RPC proxy in front of anvil that misbehaves on demand: refuses large eth_getLogs ranges
(like hosted providers), answers 503 (down) or answers slowly."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RpcProxy:
    def __init__(self, upstream: str, max_log_range: int | None = None) -> None:
        self.upstream = upstream
        self.max_log_range = max_log_range
        self.down = False
        self.delay_s = 0.0
        self.refused_ranges = 0
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.requests += 1
                if proxy.delay_s:
                    time.sleep(proxy.delay_s)
                if proxy.down:
                    self.send_error(503, "node down")
                    return
                answer = proxy._answer(json.loads(body))
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: Any) -> Any:
        if isinstance(request, list):
            return [self._answer(item) for item in request]
        if request.get("method") == "eth_getLogs" and self.max_log_range is not None:
            query = request["params"][0]
            span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
            if span > self.max_log_range:
                self.refused_ranges += 1
                return {"jsonrpc": "2.0", "id": request.get("id"),
                        "error": {"code": -32005, "message": f"query exceeds max block range {self.max_log_range}"}}
        forwarded = urllib.request.Request(
            self.upstream, data=json.dumps(request).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(forwarded, timeout=10) as response:
            return json.loads(response.read())
