"""An in-process fake of the Ledger service for SDK tests: scripted failures, recorded attempts.

It speaks real gRPC on loopback (the SDK under test uses real channels, deadlines and metadata),
but answers from a script instead of a database, so retry rules can be exercised exactly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf import message as pb_message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["Ledger"]


@dataclass(frozen=True)
class Fail:
    """Answer one attempt with this status (ErrorInfo when reason is set, RetryInfo when delay is)."""

    code: grpc.StatusCode
    reason: str = ""
    retry_delay_s: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Sleep this long (or until the attempt's deadline passes), then answer normally."""

    seconds: float


@dataclass(frozen=True)
class Respond:
    message: pb_message.Message


Outcome = Fail | Stall | Respond


@dataclass(frozen=True)
class Attempt:
    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining_s: float | None
    at: float  # time.monotonic() when the attempt arrived
    peer: str = ""  # the client's address: which connection the attempt came on


def status_of(fail: Fail) -> grpc.Status:
    details = []
    if fail.reason:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=fail.reason, domain="ledger.v1", metadata=fail.metadata))
        details.append(info)
    if fail.retry_delay_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(fail.retry_delay_s * 1e9))
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    status = status_pb2.Status(code=fail.code.value[0], message=f"scripted {fail.code.name}", details=details)
    return rpc_status.to_status(status)


def default_response(method: str, request: Any) -> pb_message.Message:
    """A plausible success for any RPC (echoing what the request carried)."""
    output = SERVICE.methods_by_name[method].output_type
    if output.name == "Transfer":
        return pb.Transfer(
            id="01900000-0000-7000-8000-000000000001", request_id=getattr(request, "request_id", ""),
            amount=getattr(request, "amount", "") or "1", asset=getattr(request, "asset", "") or "USD",
            state=pb.POSTED, kind=pb.SINGLE_PHASE,
        )
    if output.name == "CreateTransfersResponse":
        results = [
            pb.TransferResult(transfer=pb.Transfer(
                id=f"01900000-0000-7000-8000-{i:012d}", request_id=item.request_id, amount=item.amount,
                asset=item.asset, state=pb.POSTED,
            ))
            for i, item in enumerate(request.transfers)
        ]
        return pb.CreateTransfersResponse(results=results)
    if output.name == "Asset":
        return pb.Asset(code=getattr(request, "code", "USD") or "USD", scale=2)
    message: pb_message.Message = getattr(pb, output.name)()
    return message


class FakeLedger(ledger_pb2_grpc.LedgerServicer):
    def __init__(self) -> None:
        self.script: deque[Outcome] = deque()
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()

    def then(self, *outcomes: Outcome) -> FakeLedger:
        self.script.extend(outcomes)
        return self

    def always(self, outcome: Outcome, times: int = 1000) -> FakeLedger:
        return self.then(*([outcome] * times))

    def handle(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.attempts.append(Attempt(
                method, request, {k: v for k, v in context.invocation_metadata() if isinstance(v, str)},
                context.time_remaining(), time.monotonic(), context.peer(),
            ))
            outcome = self.script.popleft() if self.script else None
        if isinstance(outcome, Fail):
            context.abort_with_status(status_of(outcome))
        if isinstance(outcome, Stall):
            end = time.monotonic() + outcome.seconds
            while time.monotonic() < end and context.is_active():
                time.sleep(0.01)
        if isinstance(outcome, Respond):
            return outcome.message
        return default_response(method, request)

    def request_ids(self, method: str | None = None) -> list[str]:
        return [a.request.request_id for a in self.attempts if method is None or a.method == method]


def _handler(name: str) -> Any:
    def handle(self: FakeLedger, request: Any, context: grpc.ServicerContext) -> Any:
        return self.handle(name, request, context)

    handle.__name__ = name
    return handle


for _method in SERVICE.methods:
    setattr(FakeLedger, _method.name, _handler(_method.name))


class FakeServer:
    """A grpc.server on 127.0.0.1:<free port> serving one FakeLedger (optionally over TLS)."""

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.ledger = FakeLedger()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        add: Any = ledger_pb2_grpc.add_LedgerServicer_to_server
        add(self.ledger, self._server)
        if credentials is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        assert self.port > 0
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait()
