"""The documented behaviour of each operation, one rule per test."""

from __future__ import annotations

import time

import grpc
import psycopg
import pytest

from ledger.v1 import events_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

Stub = ledger_pb2_grpc.LedgerStub


def reason_of(call: object, *args: object) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)  # type: ignore[operator]
    return error_reason(raised.value)


def counters(stub: Stub, account_id: str) -> tuple[int, int, int, int]:
    a = stub.GetAccount(pb.GetAccountRequest(id=account_id))
    return int(a.debits_pending), int(a.debits_posted), int(a.credits_pending), int(a.credits_posted)


def test_partial_post_releases_the_rest_and_settles_once(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    hold = transfer(stub, a.id, b.id, 1000, asset, pending=True)
    assert counters(stub, a.id) == (1000, 0, 0, 0)
    post = stub.PostPendingTransfer(pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id, amount="600"))
    assert (post.kind, post.amount, post.pending_id) == (pb.POST_PENDING, "600", hold.id)
    assert counters(stub, a.id) == (0, 600, 0, 0) and counters(stub, b.id) == (0, 0, 0, 600)
    assert stub.GetTransfer(pb.GetTransferRequest(id=hold.id)).state == pb.POSTED
    again = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id)
    assert reason_of(stub.PostPendingTransfer, again) == "PENDING_ALREADY_POSTED"
    void = pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold.id)
    assert reason_of(stub.VoidPendingTransfer, void) == "PENDING_ALREADY_POSTED"


def test_void_releases_everything(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    hold = transfer(stub, a.id, b.id, 70, asset, pending=True)
    void = stub.VoidPendingTransfer(pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold.id))
    assert (void.kind, void.state, void.amount) == (pb.VOID_PENDING, pb.VOIDED, "70")
    assert counters(stub, a.id) == (0, 0, 0, 0) and counters(stub, b.id) == (0, 0, 0, 0)
    post = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id)
    assert reason_of(stub.PostPendingTransfer, post) == "PENDING_ALREADY_VOIDED"
    assert reason_of(stub.PostPendingTransfer, pb.PostPendingTransferRequest(
        request_id=rid(), pending_id=transfer(stub, a.id, b.id, 5, asset).id)) == "PENDING_NOT_FOUND"
    too_much = transfer(stub, a.id, b.id, 10, asset, pending=True)
    assert reason_of(stub.PostPendingTransfer, pb.PostPendingTransferRequest(
        request_id=rid(), pending_id=too_much.id, amount="11")) == "EXCEEDS_PENDING_AMOUNT"


def test_expired_hold_is_released_once_and_cannot_be_posted(stub: Stub, database_url: str) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset, no_overcredit=False)
    hold = transfer(stub, a.id, b.id, 40, asset, pending=True, timeout_seconds=1)
    assert hold.HasField("expires_at")
    deadline = time.monotonic() + 10
    while stub.GetTransfer(pb.GetTransferRequest(id=hold.id)).state != pb.EXPIRED:
        assert time.monotonic() < deadline, "hold not expired within 10 s"
        time.sleep(0.1)
    assert counters(stub, a.id) == (0, 0, 0, 0)
    post = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id)
    assert reason_of(stub.PostPendingTransfer, post) == "PENDING_EXPIRED"
    with psycopg.connect(database_url) as conn:
        payloads = [bytes(p) for (p,) in conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 7 AND %s = ANY(account_ids)", (a.id,)).fetchall()]
    events = [events_pb2.LedgerEvent.FromString(p) for p in payloads]
    assert [e.transfer.pending_id for e in events] == [hold.id]


def test_post_after_timeout_fails_even_before_the_expirer_runs(stub: Stub, database_url: str) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    hold = transfer(stub, a.id, b.id, 40, asset, pending=True, timeout_seconds=1)
    time.sleep(1.05)
    post = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id)
    assert reason_of(stub.PostPendingTransfer, post) == "PENDING_EXPIRED"
    assert counters(stub, a.id) == (0, 0, 0, 0)


def test_reversal_rules(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    original = transfer(stub, a.id, b.id, 100, asset)
    r1 = stub.ReverseTransfer(pb.ReverseTransferRequest(request_id=rid(), transfer_id=original.id, amount="30"))
    assert (r1.kind, r1.debit_account_id, r1.credit_account_id, r1.reverses_transfer_id) == \
        (pb.REVERSAL, b.id, a.id, original.id)
    over = pb.ReverseTransferRequest(request_id=rid(), transfer_id=original.id, amount="71")
    assert reason_of(stub.ReverseTransfer, over) == "EXCEEDS_REVERSIBLE_AMOUNT"
    rest = stub.ReverseTransfer(pb.ReverseTransferRequest(request_id=rid(), transfer_id=original.id))
    assert rest.amount == "70"
    assert counters(stub, a.id) == (0, 100, 0, 100)
    nothing_left = pb.ReverseTransferRequest(request_id=rid(), transfer_id=original.id)
    assert reason_of(stub.ReverseTransfer, nothing_left) == "EXCEEDS_REVERSIBLE_AMOUNT"
    of_reversal = pb.ReverseTransferRequest(request_id=rid(), transfer_id=r1.id)
    assert reason_of(stub.ReverseTransfer, of_reversal) == "TRANSFER_NOT_REVERSIBLE"
    hold = transfer(stub, a.id, b.id, 5, asset, pending=True)
    assert reason_of(stub.ReverseTransfer, pb.ReverseTransferRequest(
        request_id=rid(), transfer_id=hold.id)) == "TRANSFER_NOT_REVERSIBLE"
    assert reason_of(stub.ReverseTransfer, pb.ReverseTransferRequest(
        request_id=rid(), transfer_id="0189abcd-0000-7000-8000-00000000beef")) == "TRANSFER_NOT_FOUND"


def test_reversal_respects_the_no_overdraft_limit(stub: Stub) -> None:
    asset = new_asset(stub)
    world, shop = new_account(stub, asset), new_account(stub, asset)
    wallet = new_account(stub, asset, no_overdraft=True)
    deposit = transfer(stub, world.id, wallet.id, 100, asset)
    transfer(stub, wallet.id, shop.id, 80, asset)
    claw_back = pb.ReverseTransferRequest(request_id=rid(), transfer_id=deposit.id)
    assert reason_of(stub.ReverseTransfer, claw_back) == "INSUFFICIENT_FUNDS"


def test_business_rejections(stub: Stub) -> None:
    asset, other = new_asset(stub), new_asset(stub)
    a, b, c = new_account(stub, asset), new_account(stub, asset, no_overdraft=True), new_account(stub, other)
    limited = new_account(stub, asset, no_overcredit=True)
    missing = "0189abcd-0000-7000-8000-00000000beef"
    cases = [
        ((a.id, a.id, 1, asset), "SAME_ACCOUNT"),
        ((a.id, missing, 1, asset), "ACCOUNT_NOT_FOUND"),
        ((a.id, c.id, 1, asset), "ASSET_MISMATCH"),
        ((a.id, b.id, 1, "NOSUCHASSET"), "ASSET_NOT_FOUND"),
        ((b.id, a.id, 1, asset), "INSUFFICIENT_FUNDS"),
        ((a.id, limited.id, 1, asset), "CREDIT_LIMIT_EXCEEDED"),
    ]
    for (debit, credit, amount, code), expected in cases:
        with pytest.raises(grpc.RpcError) as raised:
            transfer(stub, debit, credit, amount, code)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(raised.value) == expected
    assert reason_of(stub.CreateAccount, pb.CreateAccountRequest(request_id=rid(), asset="NOSUCH")) == "ASSET_NOT_FOUND"
    assert reason_of(stub.CreateAsset, pb.CreateAssetRequest(request_id=rid(), code=asset, scale=2)) == \
        "ASSET_ALREADY_EXISTS"


def test_counters_never_wrap(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    top = (1 << 128) - 1
    transfer(stub, a.id, b.id, top, asset)
    with pytest.raises(grpc.RpcError) as raised:
        transfer(stub, a.id, b.id, 1, asset)
    assert error_reason(raised.value) == "OVERFLOW"
    assert counters(stub, b.id) == (0, 0, 0, top)


def test_replay_is_identical_and_flagged(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    request = pb.CreateTransferRequest(request_id=rid(), debit_account_id=a.id, credit_account_id=b.id, amount="9",
                                       asset=asset, metadata={"order": "42"})
    first, call = stub.CreateTransfer.with_call(request)
    second, replay_call = stub.CreateTransfer.with_call(request)
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(deterministic=True)
    assert ("ledger-replayed", "true") not in tuple(call.trailing_metadata() or ())
    assert ("ledger-replayed", "true") in tuple(replay_call.trailing_metadata() or ())
    assert counters(stub, b.id) == (0, 0, 0, 9)
    changed = pb.CreateTransferRequest()
    changed.CopyFrom(request)
    changed.metadata["order"] = "43"
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateTransfer(changed)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(raised.value) == "IDEMPOTENCY_KEY_REUSED"
    as_account = pb.CreateAccountRequest(request_id=request.request_id, asset=asset)
    assert reason_of(stub.CreateAccount, as_account) == "IDEMPOTENCY_KEY_REUSED"
    assert stub.GetTransfer(pb.GetTransferRequest(request_id=request.request_id)).id == first.id


def test_a_rejection_is_bound_to_its_request_id(stub: Stub) -> None:
    asset = new_asset(stub)
    world, shop = new_account(stub, asset), new_account(stub, asset)
    wallet = new_account(stub, asset, no_overdraft=True)
    request = pb.CreateTransferRequest(request_id=rid(), debit_account_id=wallet.id, credit_account_id=shop.id,
                                       amount="50", asset=asset)
    assert reason_of(stub.CreateTransfer, request) == "INSUFFICIENT_FUNDS"
    transfer(stub, world.id, wallet.id, 100, asset)
    assert reason_of(stub.CreateTransfer, request) == "INSUFFICIENT_FUNDS"  # a retry cannot flip the outcome
    request.request_id = rid()
    assert stub.CreateTransfer(request).amount == "50"  # a real resubmission uses a new id


def test_non_atomic_batch_items_stand_alone(stub: Stub) -> None:
    asset = new_asset(stub)
    world, wallet = new_account(stub, asset), new_account(stub, asset, no_overdraft=True)

    def item(debit: str, credit: str, amount: int, request_id: str | None = None) -> pb.CreateTransferRequest:
        return pb.CreateTransferRequest(request_id=request_id or rid(), debit_account_id=debit,
                                        credit_account_id=credit, amount=str(amount), asset=asset)

    shared = rid()
    batch = pb.CreateTransfersRequest(request_id=rid(), transfers=[
        item(world.id, wallet.id, 100), item(wallet.id, world.id, 150), item(wallet.id, world.id, 60),
        item(wallet.id, world.id, 60), item(world.id, wallet.id, 5, shared), item(world.id, wallet.id, 5, shared),
        item(world.id, wallet.id, 6, shared),
    ])
    response = stub.CreateTransfers(batch)
    outcomes = [r.WhichOneof("outcome") for r in response.results]
    assert outcomes == ["transfer", "error", "transfer", "error", "transfer", "transfer", "error"]
    assert [r.error.reason for r in response.results if r.HasField("error")] == \
        ["INSUFFICIENT_FUNDS", "INSUFFICIENT_FUNDS", "IDEMPOTENCY_KEY_REUSED"]
    assert response.results[4].transfer.id == response.results[5].transfer.id
    assert counters(stub, wallet.id) == (0, 60, 0, 105)
    assert stub.CreateTransfers(batch) == response


def test_atomic_batch_is_all_or_nothing(stub: Stub) -> None:
    asset = new_asset(stub)
    world, shop = new_account(stub, asset), new_account(stub, asset)
    wallet = new_account(stub, asset, no_overdraft=True)
    items = [
        pb.CreateTransferRequest(request_id=rid(), debit_account_id=world.id, credit_account_id=wallet.id,
                                 amount="100", asset=asset),
        pb.CreateTransferRequest(request_id=rid(), debit_account_id=wallet.id, credit_account_id=shop.id,
                                 amount="100", asset=asset),
        pb.CreateTransferRequest(request_id=rid(), debit_account_id=wallet.id, credit_account_id=shop.id,
                                 amount="1", asset=asset),
    ]
    failed = stub.CreateTransfers(pb.CreateTransfersRequest(request_id=rid(), atomic=True, transfers=items))
    assert [r.error.reason for r in failed.results] == ["BATCH_ITEM_FAILED", "BATCH_ITEM_FAILED", "INSUFFICIENT_FUNDS"]
    assert counters(stub, wallet.id) == (0, 0, 0, 0)
    ok = stub.CreateTransfers(pb.CreateTransfersRequest(request_id=rid(), atomic=True, transfers=items[:2]))
    assert all(r.HasField("transfer") for r in ok.results)  # the items' ids were not burned by the failure
    assert counters(stub, wallet.id) == (0, 100, 0, 100) and counters(stub, shop.id) == (0, 0, 0, 100)


def test_balance_as_of_and_entries_statement(stub: Stub) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    transfer(stub, a.id, b.id, 10, asset)
    middle = stub.GetAccount(pb.GetAccountRequest(id=b.id))
    time.sleep(0.01)
    from google.protobuf import timestamp_pb2

    cut = timestamp_pb2.Timestamp()
    cut.GetCurrentTime()
    time.sleep(0.01)
    hold = transfer(stub, a.id, b.id, 7, asset, pending=True)
    stub.PostPendingTransfer(pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id, amount="3"))
    for _ in range(5):
        transfer(stub, a.id, b.id, 1, asset)
    then = stub.GetAccountBalance(pb.GetAccountBalanceRequest(account_id=b.id, as_of=cut))
    assert (then.credits_posted, then.version) == (middle.credits_posted, middle.version) == ("10", 1)
    now = stub.GetAccountBalance(pb.GetAccountBalanceRequest(account_id=b.id))
    assert (now.credits_posted, now.credits_pending, now.version) == ("18", "0", 8)
    entries: list[pb.Entry] = []
    token = ""
    while True:
        page = stub.ListAccountEntries(pb.ListAccountEntriesRequest(account_id=b.id, page_size=3, page_token=token))
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [e.account_version for e in entries] == list(range(1, 9))
    assert [(e.kind, e.pending_change, e.posted_change) for e in entries[:3]] == [
        (pb.SINGLE_PHASE, "0", "10"), (pb.HOLD, "7", "0"), (pb.POST_PENDING, "-7", "3")]
    assert entries[-1].credits_posted == "18" and all(e.side == pb.CREDIT for e in entries)
    later = stub.ListAccountEntries(pb.ListAccountEntriesRequest(account_id=b.id, start_time=cut))
    assert [e.account_version for e in later.entries] == list(range(2, 9))


def test_list_accounts_filters_and_pages(stub: Stub) -> None:
    asset = new_asset(stub)
    tag = rid("tenant")
    made = {new_account(stub, asset, metadata={"tenant": tag, "i": str(i)}).id for i in range(5)}
    new_account(stub, asset, metadata={"tenant": "other"})
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListAccounts(pb.ListAccountsRequest(asset=asset, metadata={"tenant": tag}, page_size=2,
                                                        page_token=token))
        seen.extend(a.id for a in page.accounts)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5


def test_history_is_append_only(stub: Stub, database_url: str) -> None:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    t = transfer(stub, a.id, b.id, 5, asset)
    hold = transfer(stub, a.id, b.id, 5, asset, pending=True)
    stub.VoidPendingTransfer(pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold.id))
    statements = [
        ("UPDATE entries SET posted_change = 6 WHERE transfer_id = %s", t.id),
        ("DELETE FROM entries WHERE transfer_id = %s", t.id),
        ("UPDATE transfers SET amount = 6 WHERE id = %s", t.id),
        ("DELETE FROM transfers WHERE id = %s", t.id),
        ("UPDATE request_outcomes SET grpc_code = 9 WHERE request_id = %s", t.request_id),
        ("UPDATE holds SET state = 2 WHERE transfer_id = %s", hold.id),
        ("DELETE FROM holds WHERE transfer_id = %s", hold.id),
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql, key in statements:
            with pytest.raises(psycopg.errors.RestrictViolation):
                conn.execute(sql, (key,))
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("TRUNCATE entries CASCADE")


def test_adjusting_a_hold(stub: Stub, database_url: str) -> None:
    asset = new_asset(stub)
    world, wallet, shop = new_account(stub, asset), new_account(stub, asset), new_account(stub, asset)
    wallet = new_account(stub, asset, no_overdraft=True)
    transfer(stub, world.id, wallet.id, 100, asset)
    hold = transfer(stub, wallet.id, shop.id, 40, asset, pending=True)

    def adjust(amount: int) -> pb.Transfer:
        result: pb.Transfer = stub.AdjustPendingTransfer(
            pb.AdjustPendingTransferRequest(request_id=rid(), pending_id=hold.id, amount=str(amount)))
        return result

    up = adjust(90)  # an incremental authorization
    assert (up.kind, up.amount, up.pending_id, up.state) == (pb.INCREASE_PENDING, "50", hold.id, pb.PENDING)
    assert counters(stub, wallet.id) == (90, 0, 0, 100) and counters(stub, shop.id) == (0, 0, 90, 0)
    assert reason_of(adjust, 101) == "INSUFFICIENT_FUNDS"
    assert reason_of(adjust, 90) == "PENDING_AMOUNT_UNCHANGED"
    down = adjust(60)  # a partial authorization reversal
    assert (down.kind, down.amount) == (pb.DECREASE_PENDING, "30")
    too_much = pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id, amount="61")
    assert reason_of(stub.PostPendingTransfer, too_much) == "EXCEEDS_PENDING_AMOUNT"
    stub.PostPendingTransfer(pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id, amount="55"))
    assert counters(stub, wallet.id) == (0, 55, 0, 100) and counters(stub, shop.id) == (0, 0, 0, 55)
    assert reason_of(adjust, 10) == "PENDING_ALREADY_POSTED"
    from tests.invariants import assert_ledger_consistent

    assert_ledger_consistent(database_url)


def test_apply_operations_posts_a_clearing_with_its_fees_atomically(stub: Stub) -> None:
    asset = new_asset(stub)
    world, merchant, fees = new_account(stub, asset), new_account(stub, asset), new_account(stub, asset)
    wallet = new_account(stub, asset, no_overdraft=True)
    transfer(stub, world.id, wallet.id, 100, asset)
    hold = transfer(stub, wallet.id, merchant.id, 50, asset, pending=True)

    def operations(fee: int) -> list[pb.Operation]:
        return [
            pb.Operation(post_pending=pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id)),
            pb.Operation(create_transfer=pb.CreateTransferRequest(
                request_id=rid(), debit_account_id=wallet.id, credit_account_id=fees.id, amount=str(fee), asset=asset)),
        ]

    failed = stub.ApplyOperations(pb.ApplyOperationsRequest(request_id=rid(), atomic=True, operations=operations(51)))
    assert [r.error.reason for r in failed.results] == ["BATCH_ITEM_FAILED", "INSUFFICIENT_FUNDS"]
    assert stub.GetTransfer(pb.GetTransferRequest(id=hold.id)).state == pb.PENDING
    ok = stub.ApplyOperations(pb.ApplyOperationsRequest(request_id=rid(), atomic=True, operations=operations(3)))
    assert [r.transfer.kind for r in ok.results] == [pb.POST_PENDING, pb.SINGLE_PHASE]
    assert counters(stub, wallet.id) == (0, 53, 0, 100)
    mixed = stub.ApplyOperations(pb.ApplyOperationsRequest(request_id=rid(), operations=[
        pb.Operation(void_pending=pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold.id)),
        pb.Operation(reverse=pb.ReverseTransferRequest(request_id=rid(), transfer_id=ok.results[1].transfer.id)),
    ]))
    assert mixed.results[0].error.reason == "PENDING_ALREADY_POSTED" and mixed.results[1].transfer.amount == "3"
