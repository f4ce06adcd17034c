"""Per-caller rate limits: one bucket shared by two replicas through Redis; a per-replica fallback
(or a refusal, fail-closed) while Redis is down; the retry delay travels in google.rpc.RetryInfo."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import admin_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import RUN_SUMMARY, open_channel
from tests.ledger_api import rid
from tests.redis_process import RedisProcess

BURST = 10


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


def replica(database_url: str, redis_url: str, fail_open: bool = True) -> LedgerServer:
    return LedgerServer(ServerConfig(
        listen="127.0.0.1:0", database_url=database_url, redis_url=redis_url, rate_limit_per_s=0.5,
        rate_limit_burst=BURST, rate_limit_fail_open=fail_open)).start()


def allowed_calls(stubs: list[ledger_pb2_grpc.LedgerStub], attempts: int) -> tuple[int, float]:
    """Calls that got through, alternating replicas; and the largest retry delay seen."""
    allowed, delay = 0, 0.0
    for i in range(attempts):
        try:
            stubs[i % len(stubs)].ListAssets(pb.ListAssetsRequest(page_size=1), timeout=5)
            allowed += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            status = rpc_status.from_call(error)
            assert status is not None
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    delay = max(delay, info.retry_delay.ToTimedelta().total_seconds())
    return allowed, delay


def test_limit_is_shared_across_replicas_and_falls_back(
    stub: ledger_pb2_grpc.LedgerStub, database_url: str, redis_server: RedisProcess
) -> None:
    key = stub.CreateApiKey(admin_pb2.CreateApiKeyRequest(request_id=rid(), name="limited",
                                                          scopes=["accounts:read"])).key
    replicas = [replica(database_url, redis_server.url), replica(database_url, redis_server.url)]
    closed = replica(database_url, redis_server.url, fail_open=False)
    channels = [open_channel(r.target, key) for r in [*replicas, closed]]
    try:
        stubs = [ledger_pb2_grpc.LedgerStub(c) for c in channels]
        allowed, delay = allowed_calls(stubs[:2], 3 * BURST)
        assert BURST <= allowed <= BURST + 1, allowed  # one bucket for both replicas
        assert delay > 0.5
        redis_server.kill()
        time.sleep(0.1)
        fallback, _ = allowed_calls(stubs[:2], 4 * BURST)
        assert 2 * BURST <= fallback <= 2 * BURST + 2, fallback  # one in-process bucket per replica
        with pytest.raises(grpc.RpcError) as raised:
            stubs[2].ListAssets(pb.ListAssetsRequest(), timeout=5)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # fail-closed replica
        RUN_SUMMARY.append(f"rate_limit shared_by_2_replicas={allowed}/{3 * BURST} "
                           f"redis_down_fallback={fallback}/{4 * BURST}")
    finally:
        for channel in channels:
            channel.close()
        for server in [*replicas, closed]:
            server.stop(grace_s=1)


def test_leases_never_admit_past_the_shared_bucket(redis_server: RedisProcess) -> None:
    """Two replicas' limiters on one Redis bucket, hammered by a busy caller: leasing tokens cuts
    the Redis calls, yet the admitted total never exceeds what the bucket allows, and a slow caller
    is still counted call by call (its lease stays one token)."""
    from ledger_server.access.rate_limit import RateLimiter

    rate, burst = 200.0, 100.0
    limiters = [RateLimiter(redis_server.url, rate, burst) for _ in range(2)]
    calls = {"n": 0}
    for limiter in limiters:
        script = limiter._script

        def counted(*args: object, _script: object = script, **kwargs: object) -> object:
            calls["n"] += 1
            return _script(*args, **kwargs)  # type: ignore[operator]

        limiter._script = counted
    started = time.monotonic()
    admitted = sum(limiters[i % 2].take("busy").allowed for i in range(3000))
    elapsed = time.monotonic() - started
    ceiling = burst + rate * elapsed + 1
    assert admitted <= ceiling, (admitted, ceiling)
    assert admitted >= burst * 0.5, admitted  # leases under-admit a little at most
    assert calls["n"] < 3000, calls  # far fewer Redis calls than requests
    RUN_SUMMARY.append(f"rate-limit leases: {admitted} of 3000 admitted in {elapsed:.2f} s "
                       f"(ceiling {ceiling:.0f}), {calls['n']} Redis calls")

    slow = RateLimiter(redis_server.url, rate, burst)
    for _ in range(5):
        assert slow.take("slow").allowed
        time.sleep(LEASE_TTL_S_FOR_TEST)
    assert slow._leases["slow"].size == 1


LEASE_TTL_S_FOR_TEST = 0.12  # just past ledger_server.access.rate_limit.LEASE_TTL_S
