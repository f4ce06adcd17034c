"""The ledger's own work per CreateTransfer call in the handler thread, gRPC and the writer excluded.

    python -m benchmarks.handler_path                 # with the rate limiter on the local Redis
    python -m benchmarks.handler_path --redis-url none

Runs the real access interceptor (authentication, scope, rate limit), validation, tenant check and
response handling of LedgerService.CreateTransfer in this process, with a committer that answers
at once, and reports process CPU per call. This is how the rate limiter's cost (one Redis call per
request, then leases) was measured for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import uuid
from typing import Any

from psycopg_pool import ConnectionPool

from benchmarks.databases import PostgresServer
from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server.access.callers import CallerDirectory, provision_admin_key
from ledger_server.access.interceptor import AccessInterceptor
from ledger_server.access.rate_limit import RateLimiter
from ledger_server.access.tenancy import TenantGuard
from ledger_server.metrics import Metrics
from ledger_server.migrate import migrate
from ledger_server.posting import Outcome
from ledger_server.reads import Reads
from ledger_server.service import LedgerService
from ledger_server.state_machine import TransferRecord
from ledger_server.wire import transfer

METHOD = "/ledger.v1.Ledger/CreateTransfer"
KEY = "bench-handler-" + "k" * 32


class _AnswerAtOnce:
    """Stands in for the group committer: the outcome of a committed transfer, immediately."""

    def __init__(self) -> None:
        record = TransferRecord(uuid.uuid4(), "r", 1, uuid.uuid4(), uuid.uuid4(), 100, "USD", None, None, None, {},
                                dt.datetime.now(dt.UTC))
        self._payload = transfer(record).SerializeToString()

    def submit(self, job: Any, timeout_s: float) -> Outcome:
        return Outcome(0, self._payload)


class _Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {KEY}"),)

    def auth_context(self) -> dict[str, Any]:
        return {}

    def time_remaining(self) -> float:
        return 5.0

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(status)


class _Details:
    method = METHOD


class _Collect:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        for handler in handlers:
            self.handlers.update(handler._method_handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.update({f"/{service}/{name}": h for name, h in handlers.items()})


def measure(url: str, redis_url: str | None, calls: int) -> float:
    provision_admin_key(url, KEY)
    with ConnectionPool(url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True) as pool:
        metrics = Metrics()
        service = LedgerService(_AnswerAtOnce(), Reads(pool), metrics, 5.0, TenantGuard(pool),  # type: ignore[arg-type]
                                CallerDirectory(pool), url, pool)
        interceptor = AccessInterceptor(service.callers, RateLimiter(redis_url, 1e9, 1e9), metrics)
        server = _Collect()
        ledger_pb2_grpc.add_LedgerServicer_to_server(service, server)
        body = ledger_pb2.CreateTransferRequest(request_id="x", debit_account_id=str(uuid.uuid4()),
                                                credit_account_id=str(uuid.uuid4()), amount="100",
                                                asset="USD").SerializeToString()

        def one() -> bytes:
            handler = interceptor.intercept_service(lambda _: server.handlers[METHOD], _Details())
            answer = handler.unary_unary(handler.request_deserializer(body), _Context())
            serialized: bytes = handler.response_serializer(answer)
            return serialized

        for _ in range(200):
            one()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        before = usage.ru_utime + usage.ru_stime
        for _ in range(calls):
            one()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime - before) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handler_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: the harness's choice)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="'none': without Redis")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    assert 1 <= args.calls <= 1_000_000
    server = PostgresServer(args.database_url)
    try:
        _, url = server.create_database("handler")
        migrate(url)
        per_call = measure(url, None if args.redis_url == "none" else args.redis_url, args.calls)
    finally:
        server.drop_databases()
        server.stop()
    print(f"handler path, CreateTransfer: {per_call * 1e6:.0f} µs of CPU per call "
          f"({args.calls} calls, Redis: {args.redis_url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
