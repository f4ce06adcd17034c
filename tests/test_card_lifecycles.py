"""Every card lifecycle, from the raw signed webhook to the ledger balances.

A real ledger server, the real gateway process (`ledger-card-gateway serve`), a private Redis; the
test plays the processor: it signs requests, asks for authorizations and delivers events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from ledger_client import LedgerClient, TransferKind, TransferState
from ledger_server.server import LedgerServer
from tests.card_gateway import GatewayProcess, Processor, event, open_cardholder
from tests.conftest import ADMIN_KEY
from tests.invariants import assert_ledger_consistent
from tests.redis_process import RedisProcess

ASSET = "USD"


@pytest.fixture(scope="module")
def ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        client.create_asset(code=ASSET, scale=2, request_id="test-asset-USD")
        yield client


@pytest.fixture(scope="module")
def processor(ledger_server: LedgerServer, database_url: str, ledger: LedgerClient) -> Iterator[Processor]:
    redis_server = RedisProcess().start()
    gateway = GatewayProcess(database_url, ledger_server.target, redis_server.url,
                             extra_args=["--hold-timeout-seconds", "3600"]).start()
    client = Processor(gateway)
    yield client
    client.close()
    gateway.stop()
    redis_server.kill()
    assert_ledger_consistent(database_url)


def program(ledger: LedgerClient) -> dict[str, str]:
    accounts = ledger.list_accounts(asset=ASSET, page_size=1000).items
    found = {a.metadata["card_program"]: a.id for a in accounts if "card_program" in a.metadata}
    assert len(found) == 5, found
    return found


def balances(ledger: LedgerClient, account_id: str) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted)."""
    a = ledger.get_account(account_id=account_id)
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


class Card:
    """A funded cardholder with one card, and the program's accounts before the test moved money."""

    def __init__(self, ledger: LedgerClient, processor: Processor, funds: int = 10_000, **controls: object) -> None:
        self.ledger = ledger
        self.wallet = open_cardholder(ledger, ASSET, funds)
        self.card = processor.issue_card(self.wallet, **controls)
        self.token: str = self.card["card_token"]
        self.program = program(ledger)
        self.start = {role: balances(ledger, account) for role, account in self.program.items()}

    def wallet_balances(self) -> tuple[int, int, int, int]:
        return balances(self.ledger, self.wallet)

    def available(self) -> int:
        return self.ledger.get_account(account_id=self.wallet).available_balance

    def moved(self, role: str) -> tuple[int, ...]:
        """How the role's counters moved since this card was set up."""
        now = balances(self.ledger, self.program[role])
        return tuple(b - a for a, b in zip(self.start[role], now, strict=True))


def test_authorization_then_final_clearing_posts_the_hold_with_fees(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    answer = processor.authorize(card.token, 2500)
    assert answer["result"] == "APPROVED" and answer["approved_amount"] == 2500
    assert card.wallet_balances() == (2500, 0, 0, 10_000)
    processor.send(event("authorization", answer["token"], card.token, 2500, status="APPROVED"))
    processor.send(event("clearing", answer["token"], card.token, 2500, final=True, interchange=30, network_fee=5))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2500, 0, 10_000)
    assert card.moved("merchant_settlement") == (0, 0, 0, 2500)
    assert card.moved("fee_revenue") == (0, 0, 0, 30)
    assert card.moved("processor_receivable") == (0, 30, 0, 5)
    assert card.moved("network_fees") == (0, 5, 0, 0)
    hold = ledger.get_transfer(transfer_id=answer["hold_id"])
    assert hold.state == TransferState.POSTED
    assert hold.request_id == f"card:auth:{answer['token']}"
