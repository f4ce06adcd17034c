"""A hypothesis state machine drives the real server and an in-memory model side by side: every
answer, every rejection reason and every counter must agree, and replays must return the original."""

from __future__ import annotations

from typing import Any

import grpc
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.ledger_api import error_reason, new_asset, rid
from tests.ledger_model import U128_MAX, LedgerModel

amounts = st.one_of(
    st.integers(1, 1000), st.integers(1, 1000), st.just(U128_MAX), st.integers(U128_MAX - 1000, U128_MAX)
)
optional_amounts = st.one_of(st.none(), st.integers(1, 1200))


class LedgerMachine(RuleBasedStateMachine):
    stub: ledger_pb2_grpc.LedgerStub

    accounts = Bundle("accounts")
    holds = Bundle("holds")
    posted = Bundle("posted")
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.model = LedgerModel()
        self.asset = ""

    @initialize(target=accounts, flags=st.lists(st.sampled_from(["none", "no_overdraft", "no_overcredit"]),
                                                min_size=3, max_size=5))
    def open_accounts(self, flags: list[str]) -> Any:
        self.asset = new_asset(self.stub)
        ids = []
        for flag in flags:
            account = self.stub.CreateAccount(pb.CreateAccountRequest(
                request_id=rid("acct"), asset=self.asset, debits_must_not_exceed_credits=flag == "no_overdraft",
                credits_must_not_exceed_debits=flag == "no_overcredit"))
            self.model.accounts[account.id] = self.model_account(flag)
            ids.append(account.id)
        return multiple(*ids)

    @staticmethod
    def model_account(flag: str) -> Any:
        from tests.ledger_model import ModelAccount

        return ModelAccount(no_overdraft=flag == "no_overdraft", no_overcredit=flag == "no_overcredit")

    def send(self, method: str, request: Any) -> tuple[pb.Transfer | None, str | None]:
        try:
            return getattr(self.stub, method)(request, timeout=30), None
        except grpc.RpcError as error:
            return None, error_reason(error)

    @rule(target=requests, debit=accounts, credit=accounts, amount=amounts, pending=st.booleans())
    def create_transfer(self, debit: str, credit: str, amount: int, pending: bool) -> Any:
        request = pb.CreateTransferRequest(request_id=rid(), debit_account_id=debit, credit_account_id=credit,
                                           amount=str(amount), asset=self.asset, pending=pending)
        transfer, reason = self.send("CreateTransfer", request)
        expected = self.model.transfer(transfer.id if transfer else None, debit, credit, amount, pending)
        assert reason == expected, (reason, expected)
        return ("CreateTransfer", request, transfer, reason)

    @rule(target=holds, request=requests)
    def remember_hold(self, request: Any) -> Any:
        transfer = request[2]
        return transfer.id if transfer is not None and transfer.kind == pb.HOLD else multiple()

    @rule(target=posted, request=requests)
    def remember_posted(self, request: Any) -> Any:
        transfer = request[2]
        posted_kinds = (pb.SINGLE_PHASE, pb.POST_PENDING, pb.REVERSAL)
        return transfer.id if transfer is not None and transfer.kind in posted_kinds else multiple()

    @rule(target=requests, hold=holds, amount=optional_amounts, post=st.booleans())
    def settle(self, hold: str, amount: int | None, post: bool) -> Any:
        if post:
            request: Any = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold,
                                                         amount="" if amount is None else str(amount))
            method = "PostPendingTransfer"
        else:
            request = pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold)
            method = "VoidPendingTransfer"
        transfer, reason = self.send(method, request)
        expected = self.model.settle(transfer.id if transfer else None, hold, post, amount if post else None)
        assert reason == expected, (reason, expected)
        return (method, request, transfer, reason)

    @rule(target=requests, hold=holds, amount=st.one_of(st.integers(1, 1200), st.just(U128_MAX)))
    def adjust(self, hold: str, amount: int) -> Any:
        request = pb.AdjustPendingTransferRequest(request_id=rid(), pending_id=hold, amount=str(amount))
        transfer, reason = self.send("AdjustPendingTransfer", request)
        expected = self.model.adjust(hold, amount)
        assert reason == expected, (reason, expected)
        return ("AdjustPendingTransfer", request, transfer, reason)

    @rule(target=requests, original=st.one_of(posted, holds), amount=optional_amounts)
    def reverse(self, original: str, amount: int | None) -> Any:
        request = pb.ReverseTransferRequest(request_id=rid(), transfer_id=original,
                                            amount="" if amount is None else str(amount))
        transfer, reason = self.send("ReverseTransfer", request)
        expected = self.model.reverse(transfer.id if transfer else None, original, amount)
        assert reason == expected, (reason, expected)
        return ("ReverseTransfer", request, transfer, reason)

    @rule(previous=requests)
    def replay_returns_the_original(self, previous: Any) -> None:
        method, request, transfer, reason = previous
        again, again_reason = self.send(method, request)
        assert again_reason == reason
        if transfer is not None:
            assert again is not None and again.SerializeToString(deterministic=True) == \
                transfer.SerializeToString(deterministic=True)

    @rule(previous=consumes(requests))
    def reused_key_is_refused(self, previous: Any) -> None:
        method, request, _, _ = previous
        if method != "CreateTransfer":
            return
        changed = pb.CreateTransferRequest()
        changed.CopyFrom(request)
        original = int(request.amount)
        changed.amount = str(original - 1 if original > 1 else 2)
        _, reason = self.send(method, changed)
        assert reason == "IDEMPOTENCY_KEY_REUSED"

    @invariant()
    def counters_agree(self) -> None:
        for account_id, expected in self.model.accounts.items():
            got = self.stub.GetAccount(pb.GetAccountRequest(id=account_id))
            assert (int(got.debits_pending), int(got.debits_posted), int(got.credits_pending),
                    int(got.credits_posted)) == (expected.debits_pending, expected.debits_posted,
                                                 expected.credits_pending, expected.credits_posted), account_id


@pytest.mark.timeout(900)
def test_server_matches_model(stub: ledger_pb2_grpc.LedgerStub) -> None:
    LedgerMachine.stub = stub
    machine = LedgerMachine.TestCase
    machine.settings = settings(
        max_examples=40, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine().runTest()
