"""The SDK's retry rules, proven against an in-process fake server speaking real gRPC.

- every attempt of one logical call carries the same request id (and the same bytes);
- backoff is bounded by max_attempts and by the call's overall deadline;
- business errors (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, NOT_FOUND) and INTERNAL are
  never retried; transient ones are, honouring a server-sent RetryInfo delay.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.v1 import ledger_pb2 as pb
from ledger_client import (
    AsyncLedgerClient,
    ChannelSettings,
    LedgerClient,
    NewTransfer,
    RetryNotice,
    RetryPolicy,
    errors,
)
from ledger_client.retry import NEVER_RETRIED_CODES, RETRYABLE_CODES
from tests.fake_ledger import Fail, FakeServer, Respond, Stall

ACCOUNT_A = "01900000-0000-7000-8000-00000000000a"
ACCOUNT_B = "01900000-0000-7000-8000-00000000000b"
FAST = RetryPolicy(max_attempts=6, initial_backoff_s=0.01, max_backoff_s=0.05, attempt_timeout_s=2.0)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def transfer(client: LedgerClient, **kwargs: object) -> object:
    args: dict[str, object] = {
        "debit_account_id": ACCOUNT_A, "credit_account_id": ACCOUNT_B, "amount": 1250, "asset": "USD",
    }
    args.update(kwargs)
    return client.create_transfer(**args)  # type: ignore[arg-type]


def test_every_attempt_carries_the_same_generated_request_id(fake: FakeServer) -> None:
    fake.ledger.then(
        Fail(grpc.StatusCode.UNAVAILABLE),
        Fail(grpc.StatusCode.ABORTED, "SERIALIZATION_RETRIES_EXHAUSTED"),
        Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED"),
        Fail(grpc.StatusCode.DEADLINE_EXCEEDED, "TIMEOUT"),
    )
    notices: list[RetryNotice] = []
    with LedgerClient(fake.target, retry=FAST, on_retry=notices.append) as client:
        result = client.create_transfer(
            debit_account_id=ACCOUNT_A, credit_account_id=ACCOUNT_B, amount=1250, asset="USD"
        )
    ids = fake.ledger.request_ids()
    assert len(ids) == 5 and len(set(ids)) == 1
    assert uuid.UUID(ids[0]).version == 7
    payloads = {a.request.SerializeToString(deterministic=True) for a in fake.ledger.attempts}
    assert len(payloads) == 1, "a retry must resend the identical request"
    assert result.request_id == ids[0]
    assert [n.attempt for n in notices] == [1, 2, 3, 4]
    assert {n.request_id for n in notices} == {ids[0]}
    assert [n.reason for n in notices] == ["", "SERIALIZATION_RETRIES_EXHAUSTED", "OVERLOADED", "TIMEOUT"]


def test_a_caller_request_id_is_sent_unchanged_on_every_attempt(fake: FakeServer) -> None:
    fake.ledger.then(Fail(grpc.StatusCode.UNAVAILABLE), Fail(grpc.StatusCode.UNAVAILABLE))
    with LedgerClient(fake.target, retry=FAST) as client:
        transfer(client, request_id="card-auth-4711")
    assert fake.ledger.request_ids() == ["card-auth-4711"] * 3


def test_each_logical_call_gets_its_own_time_ordered_id(fake: FakeServer) -> None:
    with LedgerClient(fake.target, retry=FAST) as client:
        for _ in range(50):
            transfer(client)
    ids = fake.ledger.request_ids()
    assert len(set(ids)) == 50
    assert ids == sorted(ids, key=lambda value: uuid.UUID(value).int)


def test_batch_items_get_their_own_ids_kept_across_retries(fake: FakeServer) -> None:
    fake.ledger.then(Fail(grpc.StatusCode.UNAVAILABLE))
    items = [NewTransfer(ACCOUNT_A, ACCOUNT_B, 100 + i, "USD") for i in range(3)]
    items.append(NewTransfer(ACCOUNT_A, ACCOUNT_B, 7, "USD", request_id="mine-1"))
    with LedgerClient(fake.target, retry=FAST) as client:
        result = client.create_transfers(transfers=items)
    first, second = fake.ledger.attempts
    assert first.request == second.request
    item_ids = [item.request_id for item in first.request.transfers]
    assert item_ids[3] == "mine-1"
    assert len({*item_ids, first.request.request_id}) == 5
    assert [r.request_id for r in result] == item_ids and result.ok


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", errors.InsufficientFunds),
        (grpc.StatusCode.FAILED_PRECONDITION, "PENDING_EXPIRED", errors.PendingExpired),
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT", errors.InvalidAmount),
        (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED", errors.IdempotencyKeyReused),
        (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", errors.AccountNotFound),
        (grpc.StatusCode.INTERNAL, "INTERNAL", errors.Internal),
        (grpc.StatusCode.FAILED_PRECONDITION, "", errors.Rejected),
        (grpc.StatusCode.UNIMPLEMENTED, "", errors.UnexpectedStatus),
    ],
)
def test_business_errors_are_never_retried(
    fake: FakeServer, code: grpc.StatusCode, reason: str, expected: type[errors.LedgerError]
) -> None:
    fake.ledger.always(Fail(code, reason, metadata={"account_id": ACCOUNT_B}))
    with LedgerClient(fake.target, retry=FAST) as client, pytest.raises(expected) as raised:
        transfer(client)
    assert len(fake.ledger.attempts) == 1
    error = raised.value
    assert (error.code, error.reason, error.attempts) == (code, reason, 1)
    assert error.request_id == fake.ledger.request_ids()[0]
    if reason:
        assert error.metadata == {"account_id": ACCOUNT_B}
    assert isinstance(error.__cause__, grpc.RpcError)


def test_attempts_are_bounded_by_max_attempts(fake: FakeServer) -> None:
    fake.ledger.always(Fail(grpc.StatusCode.UNAVAILABLE))
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)
    with LedgerClient(fake.target, retry=policy) as client, pytest.raises(errors.Unavailable) as raised:
        transfer(client)
    assert len(fake.ledger.attempts) == 3 and raised.value.attempts == 3
    assert isinstance(raised.value, errors.Transient)


def test_backoff_is_bounded_by_the_overall_deadline(fake: FakeServer) -> None:
    fake.ledger.always(Fail(grpc.StatusCode.UNAVAILABLE))
    policy = RetryPolicy(max_attempts=100, initial_backoff_s=0.05, max_backoff_s=0.4, attempt_timeout_s=5.0)
    notices: list[RetryNotice] = []
    deadline_s = 1.0
    with LedgerClient(fake.target, retry=policy, on_retry=notices.append) as client:
        started = time.monotonic()
        with pytest.raises(errors.Unavailable):
            transfer(client, timeout=deadline_s)
        elapsed = time.monotonic() - started
    attempts = fake.ledger.attempts
    assert 2 <= len(attempts) < 100
    assert sum(n.delay_s for n in notices) <= deadline_s
    assert all(0 <= n.delay_s <= policy.backoff_ceiling_s(n.attempt) for n in notices)
    for attempt in attempts:  # no attempt was allowed to run past the call's deadline
        assert attempt.time_remaining_s is not None
        assert attempt.at - started + attempt.time_remaining_s <= deadline_s + 0.05
    assert elapsed < deadline_s + 0.5  # it gave up at the deadline, not after another full backoff
    assert len({a.request.request_id for a in attempts}) == 1


def test_a_slow_attempt_is_retried_with_the_same_id_while_the_deadline_allows(fake: FakeServer) -> None:
    fake.ledger.then(Stall(3.0))
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.02, attempt_timeout_s=0.3)
    notices: list[RetryNotice] = []
    with LedgerClient(fake.target, retry=policy, on_retry=notices.append) as client:
        transfer(client, timeout=5.0)
    assert len(fake.ledger.attempts) == 2
    assert [n.code for n in notices] == [grpc.StatusCode.DEADLINE_EXCEEDED]
    assert len(set(fake.ledger.request_ids())) == 1


def test_the_overall_deadline_ends_a_slow_call(fake: FakeServer) -> None:
    fake.ledger.always(Stall(3.0), times=5)
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.01, max_backoff_s=0.02, attempt_timeout_s=5.0)
    with LedgerClient(fake.target, retry=policy) as client, pytest.raises(errors.DeadlineExceeded) as raised:
        transfer(client, timeout=0.5)
    assert raised.value.attempts == 1 and raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_server_sent_retry_delay_is_honoured(fake: FakeServer) -> None:
    fake.ledger.then(Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED", retry_delay_s=0.3))
    notices: list[RetryNotice] = []
    with LedgerClient(fake.target, retry=FAST, on_retry=notices.append) as client:
        transfer(client)
    first, second = fake.ledger.attempts
    assert notices[0].delay_s == pytest.approx(0.3)
    assert second.at - first.at >= 0.3


def test_a_retry_delay_beyond_the_deadline_fails_at_once(fake: FakeServer) -> None:
    fake.ledger.then(Fail(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", retry_delay_s=5.0))
    with LedgerClient(fake.target, retry=FAST) as client, pytest.raises(errors.ShuttingDown) as raised:
        started = time.monotonic()
        transfer(client, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert raised.value.retry_delay_s == pytest.approx(5.0) and len(fake.ledger.attempts) == 1


def test_reads_retry_too(fake: FakeServer) -> None:
    stored = pb.Account(id=ACCOUNT_A, asset="USD", version=3)
    fake.ledger.then(Fail(grpc.StatusCode.UNAVAILABLE), Respond(stored))
    with LedgerClient(fake.target, retry=FAST) as client:
        account = client.get_account(account_id=ACCOUNT_A)
    assert account.version == 3 and len(fake.ledger.attempts) == 2


def test_the_bearer_token_is_sent_on_every_attempt(fake: FakeServer) -> None:
    fake.ledger.then(Fail(grpc.StatusCode.UNAVAILABLE))
    with LedgerClient(fake.target, token="k-123", retry=FAST) as client:
        transfer(client)
    assert [a.metadata.get("authorization") for a in fake.ledger.attempts] == ["Bearer k-123"] * 2


def test_batch_item_errors_map_to_the_same_classes(fake: FakeServer) -> None:
    rejected = grpc.StatusCode.FAILED_PRECONDITION.value[0]
    response = pb.CreateTransfersResponse(results=[
        pb.TransferResult(transfer=pb.Transfer(id=ACCOUNT_A, amount="5", asset="USD", state=pb.POSTED)),
        pb.TransferResult(error=pb.Error(
            code=rejected, reason="INSUFFICIENT_FUNDS", message="no", metadata={"account_id": "x"}
        )),
        pb.TransferResult(error=pb.Error(code=rejected, reason="BATCH_ITEM_FAILED", message="atomic")),
    ])
    fake.ledger.then(Respond(response))
    items = [NewTransfer(ACCOUNT_A, ACCOUNT_B, 5, "USD") for _ in range(3)]
    with LedgerClient(fake.target, retry=FAST) as client:
        result = client.create_transfers(transfers=items)
    assert not result.ok and len(result.transfers) == 1
    assert [type(e) for e in result.errors] == [errors.InsufficientFunds, errors.BatchItemFailed]
    assert result.results[1].error is not None and result.results[1].error.metadata == {"account_id": "x"}
    assert result.results[1].request_id == fake.ledger.attempts[0].request.transfers[1].request_id
    with pytest.raises(errors.InsufficientFunds):
        result.results[1].unwrap()


def test_client_side_refusals_send_nothing(fake: FakeServer) -> None:
    with LedgerClient(fake.target, retry=FAST) as client:
        with pytest.raises(TypeError, match="never floats"):
            transfer(client, amount=12.5)
        with pytest.raises(TypeError, match="bool"):
            transfer(client, amount=True)
        with pytest.raises(errors.InvalidRequestId):
            transfer(client, request_id="has space")
        with pytest.raises(ValueError, match="timeout"):
            transfer(client, timeout=0)
    assert fake.ledger.attempts == []


def test_an_oversized_request_is_refused_before_sending(fake: FakeServer) -> None:
    settings = ChannelSettings(fake.target, max_send_message_bytes=4096)
    items = [NewTransfer(ACCOUNT_A, ACCOUNT_B, 1, "USD") for _ in range(100)]
    with LedgerClient(settings=settings, retry=FAST) as client, pytest.raises(ValueError, match="split it"):
        client.create_transfers(transfers=items)
    assert fake.ledger.attempts == []


# -- the async client follows the same rules -------------------------------------------------------


def test_async_client_reuses_the_request_id_and_stops_on_business_errors(fake: FakeServer) -> None:
    fake.ledger.then(
        Respond(pb.Asset(code="USD", scale=2)),
        Fail(grpc.StatusCode.UNAVAILABLE), Fail(grpc.StatusCode.ABORTED), Respond(pb.Transfer(id=ACCOUNT_A)),
        Fail(grpc.StatusCode.FAILED_PRECONDITION, "PENDING_EXPIRED"),
    )
    notices: list[RetryNotice] = []

    async def scenario() -> None:
        async with AsyncLedgerClient(fake.target, retry=FAST, on_retry=notices.append) as client:
            done = await client.create_transfer(
                debit_account_id=ACCOUNT_A, credit_account_id=ACCOUNT_B, amount="12.50", asset="USD"
            )
            assert done.id == ACCOUNT_A
            with pytest.raises(errors.PendingExpired):
                await client.post_pending_transfer(pending_id=ACCOUNT_A)

    asyncio.run(scenario())
    methods = [a.method for a in fake.ledger.attempts]
    # "12.50" is major units: the scale is looked up once (GetAsset), then three attempts, then one post
    assert methods == ["GetAsset", *["CreateTransfer"] * 3, "PostPendingTransfer"]
    assert len(set(fake.ledger.request_ids("CreateTransfer"))) == 1
    assert fake.ledger.attempts[1].request.amount == "1250"
    assert len(notices) == 2


def test_async_backoff_is_bounded_by_the_deadline(fake: FakeServer) -> None:
    fake.ledger.always(Fail(grpc.StatusCode.UNAVAILABLE))
    policy = RetryPolicy(max_attempts=100, initial_backoff_s=0.05, max_backoff_s=0.4)

    async def scenario() -> float:
        async with AsyncLedgerClient(fake.target, retry=policy) as client:
            started = time.monotonic()
            with pytest.raises(errors.Unavailable):
                await client.void_pending_transfer(pending_id=ACCOUNT_A, timeout=0.8)
            return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert elapsed < 0.8 + 0.5 and 2 <= len(fake.ledger.attempts) < 100
    assert len(set(fake.ledger.request_ids())) == 1


def test_sync_and_async_clients_offer_the_same_methods() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {name: inspect.signature(member) for name, member in vars(cls).items()
                if callable(member) and not name.startswith("_") and name not in ("close", "from_env")}

    sync, aio = public(LedgerClient), public(AsyncLedgerClient)
    assert sync.keys() == aio.keys()
    for name, signature in sync.items():
        assert list(signature.parameters) == list(aio[name].parameters), name
    rpcs = {m.name for m in pb.DESCRIPTOR.services_by_name["Ledger"].methods}
    snake = {"".join("_" + c.lower() if c.isupper() else c for c in rpc).lstrip("_") for rpc in rpcs}
    assert snake <= sync.keys(), snake - sync.keys()


# -- the pure rules ----------------------------------------------------------------------------------

CODES = st.sampled_from(list(grpc.StatusCode))


@given(
    attempt=st.integers(1, 200), code=CODES, remaining=st.floats(-1, 100),
    draw=st.floats(0, 1, exclude_max=True), server_delay=st.none() | st.floats(0, 1000),
)
def test_the_delay_rule(attempt: int, code: grpc.StatusCode, remaining: float, draw: float,
                        server_delay: float | None) -> None:
    policy = RetryPolicy()
    delay = policy.delay_before_retry(
        attempt=attempt, code=code, server_delay_s=server_delay, remaining_s=remaining, draw=draw
    )
    if code not in RETRYABLE_CODES or attempt >= policy.max_attempts:
        assert delay is None
    if code in NEVER_RETRIED_CODES:
        assert delay is None
    if delay is not None:
        assert delay + policy.attempt_min_s <= remaining  # never sleeps into the deadline
        if server_delay is None:
            assert 0 <= delay <= policy.backoff_ceiling_s(attempt) <= policy.max_backoff_s
        else:
            assert delay == min(server_delay, policy.server_delay_max_s)


@given(attempt=st.integers(1, 500))
def test_the_backoff_ceiling_grows_then_caps(attempt: int) -> None:
    policy = RetryPolicy()
    assert policy.initial_backoff_s <= policy.backoff_ceiling_s(attempt) <= policy.max_backoff_s
    assert policy.backoff_ceiling_s(attempt) <= policy.backoff_ceiling_s(attempt + 1)
