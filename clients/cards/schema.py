"""JSON bodies of the processor's requests -> model objects, or a SchemaError naming the field.

Amounts are JSON integers or strings of digits in minor units (a float is refused: no float ever
touches money). Tokens are 1..128 printable ASCII characters without spaces, so ledger request ids
derived from them stay valid. Times are RFC 3339 strings with an offset.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from ledger_cards.model import AuthorizationRequest, CardEvent, EventType, Merchant

TOKEN = re.compile(r"^[\x21-\x7e]{1,128}$")
CURRENCY = re.compile(r"^[A-Z0-9_]{1,16}$")
MCC = re.compile(r"^[0-9]{4}$")
AMOUNT_MAX = 2**128 - 1
EVENTS_PER_DELIVERY_MAX = 100
BODY_MAX_BYTES = 1 << 20


class SchemaError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def load_json(body: bytes) -> dict[str, Any]:
    if len(body) > BODY_MAX_BYTES:
        raise SchemaError("body", f"at most {BODY_MAX_BYTES} bytes")
    try:
        value = json.loads(body, parse_float=_refuse_float)
    except SchemaError:
        raise
    except (ValueError, UnicodeDecodeError) as error:
        raise SchemaError("body", f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise SchemaError("body", "must be a JSON object")
    return value


def _refuse_float(text: str) -> Any:
    raise SchemaError("amount", f"{text} is not an integer amount of minor units")


def _token(data: dict[str, Any], name: str, prefix: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not TOKEN.match(value):
        raise SchemaError(prefix + name, "1..128 printable ASCII characters without spaces")
    return value


def _required_token(data: dict[str, Any], name: str, prefix: str) -> str:
    value = _token(data, name, prefix)
    assert value is not None
    return value


def _amount(data: dict[str, Any], name: str, prefix: str, *, required: bool = True, positive: bool = True) -> int:
    value = data.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 39:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= AMOUNT_MAX:
        raise SchemaError(prefix + name, "an integer amount of minor units")
    if positive and value == 0:
        raise SchemaError(prefix + name, "must be > 0")
    return value


def _time(data: dict[str, Any], name: str, prefix: str) -> dt.datetime:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 40:
        raise SchemaError(prefix + name, "an RFC 3339 time with an offset")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaError(prefix + name, "an RFC 3339 time with an offset") from None
    if parsed.tzinfo is None:
        raise SchemaError(prefix + name, "needs an offset (e.g. Z)")
    return parsed.astimezone(dt.UTC)


def _currency(data: dict[str, Any], prefix: str) -> str:
    value = data.get("currency")
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise SchemaError(prefix + "currency", "an asset code such as USD")
    return value


def _merchant(data: dict[str, Any], prefix: str) -> Merchant:
    value = data.get("merchant")
    if value is None:
        return Merchant()
    if not isinstance(value, dict):
        raise SchemaError(prefix + "merchant", "an object")
    mcc = value.get("mcc", "")
    if not isinstance(mcc, str) or (mcc and not MCC.match(mcc)):
        raise SchemaError(prefix + "merchant.mcc", "four digits")
    name = value.get("name", "")
    country = value.get("country", "")
    if not isinstance(name, str) or not isinstance(country, str) or len(name) > 200 or len(country) > 3:
        raise SchemaError(prefix + "merchant", "name (<= 200 characters) and country (<= 3) are strings")
    return Merchant(mcc=mcc, name=name, country=country)


def authorization_request(data: dict[str, Any]) -> AuthorizationRequest:
    partial = data.get("partial_approval_capable", False)
    if not isinstance(partial, bool):
        raise SchemaError("partial_approval_capable", "a boolean")
    return AuthorizationRequest(
        token=_required_token(data, "token", ""), card_token=_required_token(data, "card_token", ""),
        amount=_amount(data, "amount", ""), currency=_currency(data, ""), created=_time(data, "created", ""),
        merchant=_merchant(data, ""), partial_approval_capable=partial,
    )


def event(data: Any, prefix: str = "") -> CardEvent:
    if not isinstance(data, dict):
        raise SchemaError(prefix.rstrip("."), "an object")
    kind_text = data.get("type")
    try:
        kind = EventType(str(kind_text))
    except ValueError:
        raise SchemaError(prefix + "type", f"one of {', '.join(t.value for t in EventType)}") from None
    status = data.get("status")
    if kind == EventType.AUTHORIZATION and status not in ("APPROVED", "DECLINED"):
        raise SchemaError(prefix + "status", "APPROVED or DECLINED")
    final = data.get("final", True)
    if not isinstance(final, bool):
        raise SchemaError(prefix + "final", "a boolean")
    needs_amount = kind in (EventType.CLEARING, EventType.RETURN, EventType.RETURN_REVERSAL)
    authorized: int | None = None
    if kind in (EventType.AUTHORIZATION_ADVICE, EventType.AUTHORIZATION_INCREMENTAL, EventType.AUTHORIZATION_REVERSAL):
        authorized = _amount(data, "authorized_amount", prefix, positive=False)
        if kind != EventType.AUTHORIZATION_REVERSAL and authorized == 0:
            raise SchemaError(prefix + "authorized_amount", "must be > 0 (a reversal lowers it to 0)")
    amount = _amount(data, "amount", prefix, required=needs_amount or kind == EventType.AUTHORIZATION,
                     positive=needs_amount or (kind == EventType.AUTHORIZATION and status == "APPROVED"))
    return CardEvent(
        token=_required_token(data, "token", prefix), type=kind,
        transaction_token=_required_token(data, "transaction_token", prefix),
        card_token=_required_token(data, "card_token", prefix), created=_time(data, "created", prefix),
        currency=_currency(data, prefix), amount=amount, authorized_amount=authorized,
        status=status if kind == EventType.AUTHORIZATION else None, final=final,
        interchange=_amount(data, "interchange", prefix, required=False, positive=False),
        network_fee=_amount(data, "network_fee", prefix, required=False, positive=False),
        original_transaction_token=_token(data, "original_transaction_token", prefix, required=False),
        merchant=_merchant(data, prefix),
    )


def delivery(data: dict[str, Any]) -> list[tuple[CardEvent, dict[str, Any]]]:
    """A webhook delivery: {"events": [event, ...]} (1..100), each with its raw object."""
    events = data.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= EVENTS_PER_DELIVERY_MAX:
        raise SchemaError("events", f"a list of 1..{EVENTS_PER_DELIVERY_MAX} events")
    return [(event(item, f"events[{i}]."), item) for i, item in enumerate(events)]


def event_to_json(item: CardEvent) -> dict[str, Any]:
    """The wire form of an event (the simulator sends these)."""
    data: dict[str, Any] = {
        "token": item.token, "type": item.type.value, "transaction_token": item.transaction_token,
        "card_token": item.card_token, "created": item.created.isoformat().replace("+00:00", "Z"),
        "currency": item.currency, "amount": item.amount,
    }
    if item.authorized_amount is not None:
        data["authorized_amount"] = item.authorized_amount
    if item.status is not None:
        data["status"] = item.status
    if item.type == EventType.CLEARING:
        data["final"] = item.final
    if item.interchange:
        data["interchange"] = item.interchange
    if item.network_fee:
        data["network_fee"] = item.network_fee
    if item.original_transaction_token:
        data["original_transaction_token"] = item.original_transaction_token
    if item.merchant.mcc or item.merchant.name:
        data["merchant"] = {"mcc": item.merchant.mcc, "name": item.merchant.name, "country": item.merchant.country}
    return data
