"""The card gateway's HTTP faces (Starlette, served by uvicorn): the processor's real-time
authorization endpoint, its event webhook, and the card admin endpoints.

Processor requests are verified on the raw body before anything else (forged, stale and replayed
requests are refused and change nothing); admin requests need the gateway's admin bearer key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ledger_cards import schema
from ledger_cards.applier import EventApplier
from ledger_cards.authorizer import Authorizer, AuthorizerConfig, ReplayedRequestError
from ledger_cards.card_cache import CardCache
from ledger_cards.coalescer import Coalescer
from ledger_cards.model import Card, CardState
from ledger_cards.program import Programs
from ledger_cards.signatures import SignatureError, SignatureVerifier, VerifiedRequest
from ledger_cards.spend_limits import SpendLimits
from ledger_cards.store import CardStore
from ledger_client import AsyncLedgerClient, ChannelSettings, LedgerError
from ledger_client.errors import NotFound

log = logging.getLogger(__name__)

REPLAY_BATCH_MAX = 500
SEEN_SWEEP_INTERVAL_S = 60.0
AUTHORIZATIONS_PATH = "/v1/authorizations"


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str
    ledger_target: str
    ledger_api_key: str
    webhook_secrets: tuple[str, ...]
    admin_key: str
    redis_url: str | None = None
    authorizer: AuthorizerConfig = field(default_factory=AuthorizerConfig)
    workers: int = 16
    signature_tolerance_s: int = 300
    ledger_connections: int = 1  # to the ledger, used in turn: at least its --processes

    def __post_init__(self) -> None:
        assert self.webhook_secrets, "at least one webhook secret"
        assert len(self.admin_key) >= 16, "the admin key must have at least 16 characters"


def message_key(verified: VerifiedRequest) -> str:
    """A signed request's identity for replay checks: its message id and signature timestamp (a
    processor's retry carries a new timestamp, so it is not a replay), as a SHA-256 digest: 64
    characters whatever the id (up to 4 KiB, any text), so one long id cannot overflow the index of
    card_seen_messages and fail the statement it shares with other authorizations."""
    return hashlib.sha256(f"{verified.message_id}:{verified.timestamp}".encode()).hexdigest()


class ReplayGuard:
    """Refuses a signed request received before (card_seen_messages, shared by every gateway
    replica). The authorization endpoint marks its message in the statement that records its answer
    (or in its card lookup when the card was not cached; see ledger_cards/authorizer.py); this is
    the event endpoint's check. Concurrent checks share one statement."""

    def __init__(self, store: CardStore) -> None:
        self._checks: Coalescer[str, bool] = Coalescer(store.mark_seen_messages, batch_max=REPLAY_BATCH_MAX)

    def stats(self) -> dict[str, int]:
        return self._checks.stats()

    async def first_time(self, verified: VerifiedRequest) -> bool:
        return await self._checks.submit(message_key(verified))


class Gateway:
    """Everything the app needs, opened and closed with it."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.store = CardStore(config.database_url, config.workers,
                               seen_ttl_s=2 * config.signature_tolerance_s + 60)
        settings = ChannelSettings(target=config.ledger_target, token=config.ledger_api_key,
                                   connections=config.ledger_connections)
        self._settings = settings
        self.ledger: AsyncLedgerClient | None = None
        self.verifier = SignatureVerifier(config.webhook_secrets, config.signature_tolerance_s)
        self.replays = ReplayGuard(self.store)
        self._sweeper: asyncio.Task[None] | None = None
        self.limits = SpendLimits(config.redis_url, self.store)
        self.cards = CardCache(config.database_url)

    async def open(self) -> None:
        await self.store.open()
        await self.cards.start()
        self.ledger = AsyncLedgerClient(settings=self._settings, timeout=10.0)
        self.programs = Programs(self.store, self.ledger)
        self.authorizer = Authorizer(self.store, self.ledger, self.programs, self.limits, self.config.authorizer,
                                     self.cards)
        self.applier = EventApplier(self.store, self.ledger, self.programs, self.config.authorizer.lifecycle,
                                    self.config.workers)
        self.applier.start()
        self._sweeper = asyncio.ensure_future(self._sweep_seen_messages())

    async def _sweep_seen_messages(self) -> None:
        """Delete expired replay-check rows, once a minute, for as long as the gateway runs."""
        while True:
            try:
                await self.store.delete_expired_seen_messages()
            except Exception:
                log.exception("deleting expired seen messages failed; next try in a minute")
            await asyncio.sleep(SEEN_SWEEP_INTERVAL_S)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.applier.stop()
        await self.authorizer.drain()
        assert self.ledger is not None
        await self.ledger.close()
        await self.limits.close()
        await self.cards.stop()
        await self.store.close()

    async def wait_until_applied(self, timeout_s: float = 60.0) -> None:
        """Tests and the simulator: wait until the inbox is empty."""
        deadline = time.monotonic() + timeout_s
        while await self.store.unapplied_count() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("events still unapplied")
            await asyncio.sleep(0.05)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _refusal(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": code, "message": message}


def _verified(
    gateway: Gateway, headers: Mapping[str, str], body: bytes
) -> VerifiedRequest | tuple[int, dict[str, Any]]:
    """The request's verified signature, or why it is refused (forged, stale, missing headers)."""
    try:
        return gateway.verifier.verify(headers, body)
    except SignatureError as error:
        return _refusal(401, error.reason, str(error))


async def _refused(gateway: Gateway, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]] | None:
    """Why a processor request is refused (forged, stale, replayed), or None: verified, first time."""
    verified = _verified(gateway, headers, body)
    if not isinstance(verified, VerifiedRequest):
        return verified
    if not await gateway.replays.first_time(verified):
        return _replayed()
    return None


def _replayed() -> tuple[int, dict[str, Any]]:
    return _refusal(409, "replayed", "this signed request was already received")


async def answer_authorization(gateway: Gateway, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """The processor's real-time question: approve, partially approve or decline. The signature is
    checked first; whether the request is a replay is learnt with its card lookup or, for a cached
    card, as its answer is recorded, and a replay changes nothing (refused with 409)."""
    verified = _verified(gateway, headers, body)
    if not isinstance(verified, VerifiedRequest):
        return verified
    try:
        asked = schema.authorization_request(schema.load_json(body))
    except schema.SchemaError as error:
        return _refusal(400, "invalid_request", str(error))
    try:
        decision = await gateway.authorizer.authorize(asked, message_key(verified))
    except ReplayedRequestError:
        return _replayed()
    return 200, decision.to_json()


class RealTimeRoute:
    """ASGI: `POST /v1/authorizations` served directly, every other request by the Starlette app.

    It is the one path with a latency budget, and at hundreds of requests per second the framework's
    router, middleware and request/response objects were a measurable share of the gateway's CPU
    (benchmarks/README.md); the answer is the same either way."""

    def __init__(self, app: Starlette, gateway: Gateway) -> None:
        self._app = app
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != AUTHORIZATIONS_PATH:
            await self._app(scope, receive, send)
            return
        try:
            body = await _body(receive)
        except _DisconnectedError:  # nobody left to answer; nothing was decided
            return
        headers = [(b"content-type", b"application/json")]
        if scope["method"] != "POST":
            status, answer = _refusal(405, "method_not_allowed", "POST only")
            headers.append((b"allow", b"POST"))
        elif body is None:
            status, answer = _refusal(413, "invalid_request", f"the body is larger than {schema.BODY_MAX_BYTES} bytes")
        else:
            asked = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            status, answer = await answer_authorization(self._gateway, asked, body)
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class _DisconnectedError(Exception):
    """The client went away before its request body arrived."""


async def _body(receive: Receive) -> bytes | None:
    """The request body, or None past the size bound (read no further)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        part: bytes = message.get("body", b"")
        size += len(part)
        if size > schema.BODY_MAX_BYTES:
            return None
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _verified_body(gateway: Gateway, request: Request) -> bytes | JSONResponse:
    body = await request.body()
    refused = await _refused(gateway, request.headers, body)
    if refused is not None:
        return JSONResponse(refused[1], status_code=refused[0])
    return body


async def events(request: Request) -> Response:
    """Lifecycle webhooks: stored durably (deduplicated by event token), answered, then applied."""
    gateway: Gateway = request.app.state.gateway
    body = await _verified_body(gateway, request)
    if isinstance(body, JSONResponse):
        return body
    try:
        parsed = schema.delivery(schema.load_json(body))
    except schema.SchemaError as error:
        return _error(400, "invalid_request", str(error))
    accepted = await gateway.store.accept_events(parsed)
    gateway.applier.notify([transaction for _, transaction in accepted.new])
    if accepted.conflicts:
        log.error("events re-sent with another payload (the first is kept): %s", accepted.conflicts)
    return JSONResponse({"accepted": len(accepted.new), "duplicates": accepted.duplicates,
                         "conflicts": accepted.conflicts})


# -- card admin -----------------------------------------------------------------------------------


def _admin(request: Request) -> JSONResponse | None:
    gateway: Gateway = request.app.state.gateway
    header = request.headers.get("authorization", "")
    offered = header.removeprefix("Bearer ").encode()
    if not header.startswith("Bearer ") or not hmac.compare_digest(offered, gateway.config.admin_key.encode()):
        return _error(401, "unauthenticated", "an admin bearer key is required")
    return None


def card_json(card: Card) -> dict[str, Any]:
    return {
        "id": card.id, "card_token": card.token, "account_id": card.account_id, "asset": card.asset,
        "state": card.state.name, "daily_limit": card.daily_limit, "monthly_limit": card.monthly_limit,
        "blocked_mccs": list(card.blocked_mccs), "tenant": card.tenant, "metadata": card.metadata,
    }


def _limit(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**128:
        raise schema.SchemaError(name, "a positive integer amount of minor units, or null")
    return value


def _mccs(data: dict[str, Any]) -> list[str]:
    value = data.get("blocked_mccs", [])
    if not isinstance(value, list) or len(value) > 1000 or not all(
            isinstance(m, str) and schema.MCC.match(m) for m in value):
        raise schema.SchemaError("blocked_mccs", "a list of four-digit merchant category codes")
    return sorted(set(value))


async def _json_body(request: Request) -> dict[str, Any]:
    return schema.load_json(await request.body())


async def issue_card(request: Request) -> Response:
    refused = _admin(request)
    if refused is not None:
        return refused
    gateway: Gateway = request.app.state.gateway
    assert gateway.ledger is not None
    try:
        data = await _json_body(request)
        token = data.get("card_token")
        if not isinstance(token, str) or not schema.TOKEN.match(token):
            raise schema.SchemaError("card_token", "1..128 printable ASCII characters without spaces")
        account_id = data.get("account_id")
        if not isinstance(account_id, str) or len(account_id) > 64:
            raise schema.SchemaError("account_id", "the cardholder's ledger account id")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict) or len(metadata) > 32 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items()):
            raise schema.SchemaError("metadata", "at most 32 string keys and values")
        daily, monthly, mccs = _limit(data, "daily_limit"), _limit(data, "monthly_limit"), _mccs(data)
    except schema.SchemaError as error:
        return _error(400, "invalid_request", str(error))
    try:
        account = await gateway.ledger.get_account(account_id=account_id)
    except NotFound:
        return _error(404, "account_not_found", "no such ledger account")
    except LedgerError as error:
        return _error(400 if error.reason.startswith("INVALID") else 502, error.reason.lower(), str(error))
    await gateway.programs.accounts(account.asset)
    card, created = await gateway.store.insert_card(
        token, account.id, account.asset, account.metadata.get("tenant"), daily, monthly, mccs, metadata
    )
    if card.account_id != account.id:
        return _error(409, "card_token_taken", "this card token belongs to another account")
    return JSONResponse(card_json(card), status_code=201 if created else 200)


async def get_card(request: Request) -> Response:
    refused = _admin(request)
    if refused is not None:
        return refused
    gateway: Gateway = request.app.state.gateway
    card = await _card(gateway, request.path_params["card_id"])
    return _error(404, "card_not_found", "no such card") if card is None else JSONResponse(card_json(card))


async def _card(gateway: Gateway, card_id: str) -> Card | None:
    import uuid

    try:
        uuid.UUID(card_id)
    except ValueError:
        return None
    return await gateway.store.card_by_id(card_id)


def _state_change(target: CardState) -> Any:
    async def change(request: Request) -> Response:
        refused = _admin(request)
        if refused is not None:
            return refused
        gateway: Gateway = request.app.state.gateway
        card = await _card(gateway, request.path_params["card_id"])
        if card is None:
            return _error(404, "card_not_found", "no such card")
        if card.state == CardState.CLOSED and target != CardState.CLOSED:
            return _error(409, "card_closed", "a closed card stays closed")
        await gateway.store.set_card_state(card.id, target)
        gateway.cards.evict(card.token)  # at once here; other gateways when they hear of it
        changed = await gateway.store.card_by_id(card.id)
        assert changed is not None
        return JSONResponse(card_json(changed))

    return change


async def set_controls(request: Request) -> Response:
    refused = _admin(request)
    if refused is not None:
        return refused
    gateway: Gateway = request.app.state.gateway
    card = await _card(gateway, request.path_params["card_id"])
    if card is None:
        return _error(404, "card_not_found", "no such card")
    try:
        data = await _json_body(request)
        daily, monthly, mccs = _limit(data, "daily_limit"), _limit(data, "monthly_limit"), _mccs(data)
    except schema.SchemaError as error:
        return _error(400, "invalid_request", str(error))
    if not await gateway.store.set_card_controls(card.id, daily, monthly, mccs):
        return _error(409, "card_closed", "a closed card stays closed")
    gateway.cards.evict(card.token)
    changed = await gateway.store.card_by_id(card.id)
    assert changed is not None
    return JSONResponse(card_json(changed))


async def health(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return JSONResponse({"status": "ok", "unapplied_events": await gateway.store.unapplied_count(),
                         "applied_events": gateway.applier.applied,
                         "applier_seconds": {k: round(v, 3) for k, v in gateway.applier.seconds.items()},
                         "realtime_round_trips": {**gateway.authorizer.round_trips(),
                                                  "replay_checks": gateway.replays.stats()}})


def build_app(gateway: Gateway) -> RealTimeRoute:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    routes = [
        Route("/v1/events", events, methods=["POST"]),
        Route("/v1/cards", issue_card, methods=["POST"]),
        Route("/v1/cards/{card_id}", get_card, methods=["GET"]),
        Route("/v1/cards/{card_id}/freeze", _state_change(CardState.FROZEN), methods=["POST"]),
        Route("/v1/cards/{card_id}/unfreeze", _state_change(CardState.ACTIVE), methods=["POST"]),
        Route("/v1/cards/{card_id}/close", _state_change(CardState.CLOSED), methods=["POST"]),
        Route("/v1/cards/{card_id}/controls", set_controls, methods=["PUT"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return RealTimeRoute(app, gateway)
