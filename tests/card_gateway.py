"""Test harness of the card gateway: the real `ledger-card-gateway serve` as a child process, and a
processor-side client that signs its requests like the processor does."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from ledger_cards.signatures import new_secret, signed_headers
from ledger_client import LedgerClient
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY, ROOT, free_port
from tests.invariants import assert_ledger_consistent
from tests.redis_process import RedisProcess

GATEWAY_ADMIN_KEY = "gateway-admin-" + uuid.uuid4().hex


class GatewayProcess:
    def __init__(self, database_url: str, ledger_target: str, redis_url: str | None = None,
                 extra_args: list[str] | None = None, secret: str | None = None) -> None:
        self.database_url = database_url
        self.ledger_target = ledger_target
        self.redis_url = redis_url
        self.extra_args = extra_args or []
        self.secret = secret or new_secret()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = f"/tmp/card-gateway-{self.port}.log"

    def start(self, timeout_s: float = 30) -> GatewayProcess:
        env = {**os.environ, "LEDGER_DATABASE_URL": self.database_url, "LEDGER_TARGET": self.ledger_target,
               "LEDGER_API_KEY": ADMIN_KEY, "CARD_WEBHOOK_SECRETS": self.secret,
               "CARD_GATEWAY_ADMIN_KEY": GATEWAY_ADMIN_KEY}
        if self.redis_url:
            env["LEDGER_REDIS_URL"] = self.redis_url
        args = [sys.executable, "-m", "ledger_cards.main", "serve", "--listen", f"127.0.0.1:{self.port}",
                *self.extra_args]
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it until it stops
        self.process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"card gateway did not start: {self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        with open(self.log_path, "rb") as handle:
            return handle.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def usd_ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    """An admin client of the module's ledger, with the USD asset (a card module's `ledger` fixture)."""
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        client.create_asset(code="USD", scale=2, request_id="test-asset-USD")
        yield client


@contextlib.contextmanager
def card_stack(ledger_server: LedgerServer, database_url: str, extra_args: list[str] | None = None
               ) -> Iterator[Processor]:
    """A gateway process with a private Redis and the processor's client (a card module's `processor`
    fixture); the ledger's invariants are checked when it stops."""
    redis_server = RedisProcess().start()
    gateway = GatewayProcess(database_url, ledger_server.target, redis_server.url, extra_args=extra_args).start()
    client = Processor(gateway)
    try:
        yield client
    finally:
        client.close()
        gateway.stop()
        redis_server.kill()
    assert_ledger_consistent(database_url)


def now_rfc3339(offset_s: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return moment.isoformat().replace("+00:00", "Z")


class Processor:
    """The processor's side: signed authorization requests and webhook deliveries."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.http = httpx.Client(base_url=gateway.url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def signed_post(self, path: str, payload: Any, message_id: str | None = None,
                    timestamp: int | None = None, secret: str | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = signed_headers(secret or self.gateway.secret, message_id or "msg_" + uuid.uuid4().hex, body,
                                 timestamp)
        return self.http.post(path, content=body, headers=headers)

    def authorize(self, card_token: str, amount: int, token: str | None = None, currency: str = "USD",
                  mcc: str = "5411", partial: bool = False) -> dict[str, Any]:
        payload = {"token": token or "auth_" + uuid.uuid4().hex, "card_token": card_token, "amount": amount,
                   "currency": currency, "created": now_rfc3339(), "partial_approval_capable": partial,
                   "merchant": {"mcc": mcc, "name": "Shop", "country": "US"}}
        response = self.signed_post("/v1/authorizations", payload)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def send(self, *events: dict[str, Any]) -> dict[str, Any]:
        response = self.signed_post("/v1/events", {"events": list(events)})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_applied(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.http.get("/healthz").json()
            if status["unapplied_events"] == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"events still unapplied: {status}\n{self.gateway.log()[-3000:]}")
            time.sleep(0.05)

    # -- card admin -------------------------------------------------------------------------------

    def admin(self, method: str, path: str, payload: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {GATEWAY_ADMIN_KEY}"}
        return self.http.request(method, path, json=payload, headers=headers)

    def issue_card(self, account_id: str, **controls: Any) -> dict[str, Any]:
        token = "card_" + uuid.uuid4().hex
        response = self.admin("POST", "/v1/cards", {"card_token": token, "account_id": account_id, **controls})
        assert response.status_code == 201, response.text
        card: dict[str, Any] = response.json()
        return card


def event(kind: str, transaction: str, card_token: str, amount: int = 0, offset_s: float = 0.0,
          **fields: Any) -> dict[str, Any]:
    """A webhook event as the processor sends it."""
    return {"token": "evt_" + uuid.uuid4().hex, "type": kind, "transaction_token": transaction,
            "card_token": card_token, "created": now_rfc3339(offset_s), "currency": fields.pop("currency", "USD"),
            "amount": amount, **fields}


def open_cardholder(ledger: LedgerClient, asset: str, funds: int) -> str:
    """A no-overdraft cardholder account funded with `funds`."""
    funding = ledger.create_account(asset=asset, metadata={"role": "test_funding"}).id
    wallet = ledger.create_account(asset=asset, debits_must_not_exceed_credits=True,
                                   metadata={"tenant": "acme"}).id
    if funds:
        ledger.create_transfer(debit_account_id=funding, credit_account_id=wallet, amount=funds, asset=asset)
    return wallet
