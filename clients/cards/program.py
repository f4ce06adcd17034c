"""The card program's ledger accounts per asset: created once, through the ledger API, then cached.

Each account is created with a deterministic request id (`card-program:{asset}:{role}`), so
concurrent replicas and restarts all end up with the same account; the gateway's table only
remembers the ids. Account metadata says what each one is (`card_program` = role).
"""

from __future__ import annotations

import asyncio

from ledger_cards.model import ProgramAccounts, ProgramRole
from ledger_cards.store import CardStore
from ledger_client import AsyncLedgerClient


def program_request_id(asset: str, role: ProgramRole) -> str:
    return f"card-program:{asset}:{role.value}"


class Programs:
    def __init__(self, store: CardStore, ledger: AsyncLedgerClient) -> None:
        self._store = store
        self._ledger = ledger
        self._cache: dict[str, ProgramAccounts] = {}
        self._lock = asyncio.Lock()

    async def accounts(self, asset: str) -> ProgramAccounts:
        cached = self._cache.get(asset)
        if cached is not None:
            return cached
        async with self._lock:
            ids = await self._store.program_accounts(asset)
            for role in ProgramRole:
                if role.value in ids:
                    continue
                account = await self._ledger.create_account(
                    asset=asset, metadata={"card_program": role.value}, request_id=program_request_id(asset, role)
                )
                await self._store.insert_program_account(asset, role.value, account.id)
                ids[role.value] = account.id
            program = ProgramAccounts.from_roles(asset, ids)
            self._cache[asset] = program
            return program
