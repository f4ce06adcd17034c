"""Conversions between the engine's records and ledger.v1 protobuf messages."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from ledger.v1 import events_pb2, ledger_pb2
from ledger_server.amounts import format_amount
from ledger_server.ids import uuid_text
from ledger_server.state_machine import (
    HOLD,
    POSTED,
    AccountState,
    Event,
    TransferRecord,
)

_STATE_OF_KIND = {1: POSTED, 2: 1, 3: POSTED, 4: 3, 5: 4, 6: POSTED, 7: 1, 8: 1}


_last_stamp: tuple[dt.datetime, int, int] | None = None


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """Every record of a batch carries the batch's time: convert it once, not per message."""
    global _last_stamp
    last = _last_stamp
    if last is None or last[0] != value:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(value)
        last = _last_stamp = (value, stamp.seconds, stamp.nanos)
    return timestamp_pb2.Timestamp(seconds=last[1], nanos=last[2])


def account(a: AccountState) -> ledger_pb2.Account:
    return ledger_pb2.Account(
        id=uuid_text(a.id),
        asset=a.asset,
        debits_pending=format_amount(a.debits_pending),
        debits_posted=format_amount(a.debits_posted),
        credits_pending=format_amount(a.credits_pending),
        credits_posted=format_amount(a.credits_posted),
        debits_must_not_exceed_credits=a.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=a.credits_must_not_exceed_debits,
        metadata=a.metadata,
        created_at=timestamp(a.created_at),
        version=a.version,
    )


def asset(code: str, scale: int, created_at: dt.datetime) -> ledger_pb2.Asset:
    return ledger_pb2.Asset(code=code, scale=scale, created_at=timestamp(created_at))


def transfer(t: TransferRecord, hold_state: int | None = None) -> ledger_pb2.Transfer:
    """A transfer message; `hold_state` overrides the state of a hold (its current state)."""
    state = _STATE_OF_KIND[t.kind] if hold_state is None or t.kind != HOLD else hold_state
    message = ledger_pb2.Transfer(
        id=uuid_text(t.id),
        request_id=t.request_id,
        debit_account_id=uuid_text(t.debit_account_id),
        credit_account_id=uuid_text(t.credit_account_id),
        amount=format_amount(t.amount),
        asset=t.asset,
        state=state,  # type: ignore[arg-type]
        pending_id="" if t.pending_id is None else uuid_text(t.pending_id),
        created_at=timestamp(t.created_at),
        metadata=t.metadata,
        kind=t.kind,  # type: ignore[arg-type]
        reverses_transfer_id="" if t.reverses_transfer_id is None else uuid_text(t.reverses_transfer_id),
    )
    if t.expires_at is not None:
        message.expires_at.CopyFrom(timestamp(t.expires_at))
    return message


def event(e: Event, occurred_at: dt.datetime, transfer_bytes: bytes | None = None) -> events_pb2.LedgerEvent:
    """The outbox payload of an event; its sequence is assigned by the database on insert.
    `transfer_bytes`: the subject transfer already serialized (the request's response), reused."""
    message = events_pb2.LedgerEvent(
        type=e.event_type,  # type: ignore[arg-type]
        occurred_at=timestamp(occurred_at),
        account_ids=[uuid_text(i) for i in e.account_ids],
    )
    subject = e.subject
    if isinstance(subject, AccountState):
        message.account.CopyFrom(account(subject))
    elif isinstance(subject, TransferRecord):
        if transfer_bytes is not None:
            message.transfer.MergeFromString(transfer_bytes)
        else:
            message.transfer.CopyFrom(transfer(subject))
    else:
        code, scale, created_at = subject
        message.asset.CopyFrom(asset(code, scale, created_at))
    return message
