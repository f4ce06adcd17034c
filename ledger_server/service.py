"""The ledger.v1.Ledger gRPC service: validate, then commit through the group committer or read.

Every handler answers either its response or a rich status (code + google.rpc.ErrorInfo). A
replayed outcome carries the trailing metadata `ledger-replayed: true`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message as pb_message
from google.protobuf import timestamp_pb2

from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server import commands as c
from ledger_server import validation as v
from ledger_server.chain_service import CHAIN_RPCS, ChainRpcs
from ledger_server.errors import LedgerError, invalid
from ledger_server.group_commit import GroupCommitter
from ledger_server.metrics import Metrics
from ledger_server.reads import Reads

log = logging.getLogger(__name__)
M = TypeVar("M", bound=pb_message.Message)
Handler = Callable[[Any, Any, grpc.ServicerContext], Any]


def _rpc(handler: Handler) -> Handler:
    """Turn LedgerError into a rich status and record latency and outcome per method."""
    method = handler.__name__

    @functools.wraps(handler)
    def wrapper(self: LedgerService, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        code = "OK"
        try:
            return handler(self, request, context)
        except LedgerError as error:
            code = error.code.name
            context.abort_with_status(error.to_status())
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            self.metrics.rpc_total.labels(method, code).inc()
            self.metrics.rpc_seconds.labels(method, code).observe(time.perf_counter() - started)

    return wrapper


def _time(stamp: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise invalid("INVALID_TIME_RANGE", f"{field} is not a valid timestamp", field=field) from None


class LedgerService(ChainRpcs, ledger_pb2_grpc.LedgerServicer):
    def __init__(self, committer: GroupCommitter, reads: Reads, metrics: Metrics, commit_timeout_s: float) -> None:
        self.committer = committer
        self.reads = reads
        self.metrics = metrics
        self.commit_timeout_s = commit_timeout_s

    def _commit(self, job: c.Job, response_type: type[M], context: grpc.ServicerContext) -> M:
        remaining = context.time_remaining()
        timeout = self.commit_timeout_s if remaining is None else max(0.0, min(remaining, self.commit_timeout_s))
        outcome = self.committer.submit(job, timeout)
        if outcome.replayed:
            context.set_trailing_metadata((("ledger-replayed", "true"),))
        if outcome.code != 0:
            raise outcome.error()
        return response_type.FromString(outcome.payload)

    # -- mutations --------------------------------------------------------------------------------

    @_rpc
    def CreateAsset(self, request: ledger_pb2.CreateAssetRequest, context: grpc.ServicerContext) -> ledger_pb2.Asset:
        return self._commit(v.create_asset(request), ledger_pb2.Asset, context)

    @_rpc
    def CreateAccount(
        self, request: ledger_pb2.CreateAccountRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Account:
        return self._commit(v.create_account(request), ledger_pb2.Account, context)

    @_rpc
    def CreateTransfer(
        self, request: ledger_pb2.CreateTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer:
        return self._commit(v.create_transfer(request), ledger_pb2.Transfer, context)

    @_rpc
    def CreateTransfers(
        self, request: ledger_pb2.CreateTransfersRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.CreateTransfersResponse:
        return self._commit(v.create_transfers(request), ledger_pb2.CreateTransfersResponse, context)

    @_rpc
    def PostPendingTransfer(
        self, request: ledger_pb2.PostPendingTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer:
        return self._commit(v.post_pending(request), ledger_pb2.Transfer, context)

    @_rpc
    def VoidPendingTransfer(
        self, request: ledger_pb2.VoidPendingTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer:
        return self._commit(v.void_pending(request), ledger_pb2.Transfer, context)

    @_rpc
    def ReverseTransfer(
        self, request: ledger_pb2.ReverseTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer:
        return self._commit(v.reverse_transfer(request), ledger_pb2.Transfer, context)

    # -- reads ------------------------------------------------------------------------------------

    @_rpc
    def GetAsset(self, request: ledger_pb2.GetAssetRequest, context: grpc.ServicerContext) -> ledger_pb2.Asset:
        return self.reads.get_asset(v.asset_code(request.code, "code"))

    @_rpc
    def ListAssets(
        self, request: ledger_pb2.ListAssetsRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ListAssetsResponse:
        return self.reads.list_assets(v.page_size(request.page_size), request.page_token)

    @_rpc
    def GetAccount(self, request: ledger_pb2.GetAccountRequest, context: grpc.ServicerContext) -> ledger_pb2.Account:
        return self.reads.get_account(v.identifier(request.id, "id"))

    @_rpc
    def ListAccounts(
        self, request: ledger_pb2.ListAccountsRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ListAccountsResponse:
        asset = v.asset_code(request.asset) if request.asset else None
        return self.reads.list_accounts(
            v.page_size(request.page_size), request.page_token, asset, v.metadata(request.metadata)
        )

    @_rpc
    def GetAccountBalance(
        self, request: ledger_pb2.GetAccountBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.AccountBalance:
        as_of = _time(request.as_of, "as_of") if request.HasField("as_of") else None
        return self.reads.get_balance(v.identifier(request.account_id, "account_id"), as_of)

    @_rpc
    def ListAccountEntries(
        self, request: ledger_pb2.ListAccountEntriesRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ListAccountEntriesResponse:
        account_id = v.identifier(request.account_id, "account_id")
        start = _time(request.start_time, "start_time") if request.HasField("start_time") else None
        end = _time(request.end_time, "end_time") if request.HasField("end_time") else None
        if start is not None and end is not None and end <= start:
            raise invalid("INVALID_TIME_RANGE", "end_time must be after start_time", field="end_time")
        return self.reads.list_entries(account_id, v.page_size(request.page_size), request.page_token, start, end)

    @_rpc
    def GetTransfer(
        self, request: ledger_pb2.GetTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer:
        key = request.WhichOneof("key")
        if key == "id":
            return self.reads.get_transfer(v.identifier(request.id, "id"), None)
        if key == "request_id":
            return self.reads.get_transfer(None, v.request_id(request.request_id))
        raise invalid("MISSING_FIELD", "id or request_id is required", field="key")


# Chain RPCs (ledger_server/chain_service.py), wrapped like every handler above.
for _name in CHAIN_RPCS:
    setattr(LedgerService, _name, _rpc(getattr(ChainRpcs, _name)))
