"""`CardsClient`: the card gateway's admin endpoints (issue, freeze, unfreeze, close, controls).

Cards live in the card gateway (docs/cards.md), not in the ledger RPCs: this client speaks its HTTP
admin API with the gateway's admin bearer key. Errors map to the SDK's error classes, so callers
and `ledgerctl` treat them like ledger errors (not found, refused, invalid, unavailable).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from ledger_client.errors import InvalidRequest, LedgerError, NotFound, Rejected, Unauthenticated, Unavailable

DEFAULT_GATEWAY = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Card:
    id: str
    card_token: str
    account_id: str
    asset: str
    state: str  # ACTIVE, FROZEN, CLOSED
    daily_limit: int | None
    monthly_limit: int | None
    blocked_mccs: tuple[str, ...]
    tenant: str | None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Card:
        return cls(
            id=data["id"], card_token=data["card_token"], account_id=data["account_id"], asset=data["asset"],
            state=data["state"], daily_limit=data.get("daily_limit"), monthly_limit=data.get("monthly_limit"),
            blocked_mccs=tuple(data.get("blocked_mccs", ())), tenant=data.get("tenant"),
            metadata=dict(data.get("metadata") or {}),
        )


_ERRORS: dict[int, tuple[type[LedgerError], grpc.StatusCode]] = {
    400: (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    401: (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    404: (NotFound, grpc.StatusCode.NOT_FOUND),
    409: (Rejected, grpc.StatusCode.FAILED_PRECONDITION),
}


class CardsClient:
    """A blocking client of the card gateway's admin API. Close it (or use `with`)."""

    def __init__(self, gateway: str = DEFAULT_GATEWAY, *, admin_key: str, timeout: float = 10.0) -> None:
        assert 0 < timeout <= 3600
        self._http = httpx.Client(base_url=gateway, timeout=timeout,
                                  headers={"authorization": f"Bearer {admin_key}"})

    @classmethod
    def from_env(cls) -> CardsClient:
        """From CARD_GATEWAY_URL and CARD_GATEWAY_ADMIN_KEY."""
        return cls(os.environ.get("CARD_GATEWAY_URL", DEFAULT_GATEWAY),
                   admin_key=os.environ.get("CARD_GATEWAY_ADMIN_KEY", ""))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CardsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Card:
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.HTTPError as error:
            raise Unavailable(f"card gateway unreachable: {error}", code=grpc.StatusCode.UNAVAILABLE) from error
        if response.status_code in (200, 201):
            return Card.from_json(response.json())
        kind, code = _ERRORS.get(response.status_code, (Unavailable, grpc.StatusCode.UNAVAILABLE))
        try:
            body = response.json()
        except ValueError:
            body = {"error": "http_error", "message": response.text[:500]}
        raise kind(f"{body.get('error')}: {body.get('message')}", code=code,
                   metadata={"http_status": str(response.status_code), "error": str(body.get("error"))})

    def issue_card(
        self, *, card_token: str, account_id: str, daily_limit: int | None = None, monthly_limit: int | None = None,
        blocked_mccs: Sequence[str] = (), metadata: dict[str, str] | None = None,
    ) -> Card:
        """Issue a card (idempotent by the processor's card token) spending from `account_id`."""
        return self._call("POST", "/v1/cards", {
            "card_token": card_token, "account_id": account_id, "daily_limit": daily_limit,
            "monthly_limit": monthly_limit, "blocked_mccs": list(blocked_mccs), "metadata": metadata or {},
        })

    def get_card(self, *, card_id: str) -> Card:
        return self._call("GET", f"/v1/cards/{card_id}")

    def freeze_card(self, *, card_id: str) -> Card:
        return self._call("POST", f"/v1/cards/{card_id}/freeze")

    def unfreeze_card(self, *, card_id: str) -> Card:
        return self._call("POST", f"/v1/cards/{card_id}/unfreeze")

    def close_card(self, *, card_id: str) -> Card:
        """Close for good: a closed card declines everything and cannot be reopened."""
        return self._call("POST", f"/v1/cards/{card_id}/close")

    def set_card_controls(
        self, *, card_id: str, daily_limit: int | None = None, monthly_limit: int | None = None,
        blocked_mccs: Sequence[str] = (),
    ) -> Card:
        """Replace the card's spend limits (minor units per UTC day / month; None: no limit) and MCC blocks."""
        return self._call("PUT", f"/v1/cards/{card_id}/controls", {
            "daily_limit": daily_limit, "monthly_limit": monthly_limit, "blocked_mccs": list(blocked_mccs),
        })
