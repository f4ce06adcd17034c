"""What operators rely on: health checks, reflection, Prometheus metrics, graceful SIGTERM."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import ServerProcess, free_port, open_channel
from tests.invariants import transfers_by_request_id
from tests.ledger_api import new_account, new_asset, rid


def test_health_reflection_and_metrics(server_process: Callable[..., ServerProcess]) -> None:
    metrics_port = free_port()
    server = server_process(extra_env={"LEDGER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}).start()
    with open_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "ledger.v1.Ledger"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for answer in answers for s in answer.list_services_response.service}
        assert "ledger.v1.Ledger" in names
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        new_account(stub, asset)
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'ledger_rpc_total{code="OK",method="CreateAccount"} 1.0' in body
    for name in ("ledger_rpc_seconds_bucket", "ledger_batch_jobs_bucket", "ledger_lock_wait_seconds_bucket",
                 "ledger_read_pool_size", "ledger_batch_retries_total"):
        assert name in body, name
    assert server.terminate() == 0


def test_sigterm_drains_in_flight_calls(server_process: Callable[..., ServerProcess], database_url: str) -> None:
    server = server_process().start()
    acknowledged: list[str] = []
    stop = threading.Event()
    with open_channel(server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        a, b = new_account(stub, asset).id, new_account(stub, asset).id

        def writer() -> None:
            while not stop.is_set():
                request = pb.CreateTransferRequest(request_id=rid(), debit_account_id=a, credit_account_id=b,
                                                   amount="1", asset=asset)
                try:
                    stub.CreateTransfer(request, timeout=5)
                except grpc.RpcError:
                    return
                acknowledged.append(request.request_id)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        threading.Event().wait(1.0)
        assert server.terminate() == 0
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    found = transfers_by_request_id(database_url)
    assert acknowledged and all(r in found for r in acknowledged)
