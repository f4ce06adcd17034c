"""Database rows of the named queries turned into the engine's records."""

from __future__ import annotations

import json
from typing import Any

from ledger_server.state_machine import AccountState, TransferRecord


def transfer_record(row: tuple[Any, ...]) -> TransferRecord:
    (tid, kind, debit, credit, amount, asset, request_id, pending_id, reverses, expires_at, metadata,
     created_at) = row
    return TransferRecord(
        tid, request_id, kind, debit, credit, int(amount), asset, pending_id, reverses, expires_at,
        json.loads(metadata), created_at,
    )


def account_state(row: tuple[Any, ...]) -> AccountState:
    (aid, asset, dp, dpo, cp, cpo, dmnec, cmned, version, metadata, created_at) = row
    return AccountState(
        aid, asset, int(dp), int(dpo), int(cp), int(cpo), dmnec, cmned, version, json.loads(metadata), created_at
    )
