"""The ledger.v1.Ledger gRPC service: validate, then commit through the group committer or read.

Every handler answers either its response or a rich status (code + google.rpc.ErrorInfo). A
replayed outcome carries the trailing metadata `ledger-replayed: true`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from google.protobuf import message as pb_message
from psycopg_pool import ConnectionPool

from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server import commands as c
from ledger_server import validation as v
from ledger_server.access.admin_service import AdminService
from ledger_server.access.callers import CallerDirectory
from ledger_server.access.interceptor import current_principal
from ledger_server.access.scopes import allows
from ledger_server.access.tenancy import TenantGuard
from ledger_server.chain_service import CHAIN_RPCS, ChainRpcs
from ledger_server.commands import attribute
from ledger_server.errors import LedgerError, invalid
from ledger_server.group_commit import Committer
from ledger_server.metrics import Metrics
from ledger_server.posting import Outcome
from ledger_server.reads import Reads
from ledger_server.rpc_handler import rpc as _rpc
from ledger_server.rpc_handler import to_datetime as _time

log = logging.getLogger(__name__)
M = TypeVar("M", bound=pb_message.Message)


def _referenced_transfers(item: c.TransferCommand) -> tuple[uuid.UUID, ...]:
    if isinstance(item, c.PostPending | c.VoidPending | c.AdjustPending):
        return (item.pending_id,)
    if isinstance(item, c.ReverseTransfer):
        return (item.transfer_id,)
    return ()


class LedgerService(ChainRpcs, AdminService, ledger_pb2_grpc.LedgerServicer):
    def __init__(
        self, committer: Committer, reads: Reads, metrics: Metrics, commit_timeout_s: float,
        tenants: TenantGuard, callers: CallerDirectory, database_url: str, pool: ConnectionPool[Any],
    ) -> None:
        self.pool = pool
        self.committer = committer
        self.reads = reads
        self.metrics = metrics
        self.commit_timeout_s = commit_timeout_s
        self.tenants = tenants
        self.callers = callers
        self.database_url = database_url

    def _commit(self, job: c.Job, response_type: type[M], context: grpc.ServicerContext) -> M | bytes:
        """The committed response, as the bytes stored with the outcome: the access interceptor's
        serializer sends bytes as they are (no parse and re-serialize per call). `response_type`
        names what those bytes are."""
        outcome = self._submit(job, context)
        if outcome.code != 0:
            raise outcome.error()
        return outcome.payload

    def _submit(self, job: c.Job, context: grpc.ServicerContext) -> Outcome:
        """Queue a job in the caller's name and wait for its outcome."""
        job = attribute(job, current_principal().id)
        job.request_hash()  # here, in the handler's thread: the writer only reads it (commands.computed_once)
        remaining = context.time_remaining()
        timeout = self.commit_timeout_s if remaining is None else max(0.0, min(remaining, self.commit_timeout_s))
        outcome = self.committer.submit(job, timeout)
        if outcome.replayed:
            context.set_trailing_metadata((("ledger-replayed", "true"),))
        return outcome

    @staticmethod
    def _tenant() -> str | None:
        return current_principal().tenant

    # -- mutations --------------------------------------------------------------------------------

    @_rpc
    def CreateAsset(
        self, request: ledger_pb2.CreateAssetRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Asset | bytes:
        return self._commit(v.create_asset(request), ledger_pb2.Asset, context)

    @_rpc
    def CreateAccount(
        self, request: ledger_pb2.CreateAccountRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Account | bytes:
        command = v.create_account(request)
        command = replace(command, metadata=self.tenants.tag_metadata(self._tenant(), command.metadata))
        return self._commit(command, ledger_pb2.Account, context)

    @_rpc
    def CreateTransfer(
        self, request: ledger_pb2.CreateTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer | bytes:
        command = v.create_transfer(request)
        self.tenants.check_accounts(self._tenant(), (command.debit_account_id, command.credit_account_id))
        return self._commit(command, ledger_pb2.Transfer, context)

    @_rpc
    def CreateTransfers(
        self, request: ledger_pb2.CreateTransfersRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.CreateTransfersResponse | bytes:
        batch = v.create_transfers(request)
        accounts = {a for item in batch.items if isinstance(item, c.CreateTransfer)
                    for a in (item.debit_account_id, item.credit_account_id)}
        self.tenants.check_accounts(self._tenant(), accounts)
        return self._commit(batch, ledger_pb2.CreateTransfersResponse, context)

    @_rpc
    def PostPendingTransfer(
        self, request: ledger_pb2.PostPendingTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer | bytes:
        command = v.post_pending(request)
        self.tenants.check_transfers(self._tenant(), (command.pending_id,))
        return self._commit(command, ledger_pb2.Transfer, context)

    @_rpc
    def VoidPendingTransfer(
        self, request: ledger_pb2.VoidPendingTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer | bytes:
        command = v.void_pending(request)
        self.tenants.check_transfers(self._tenant(), (command.pending_id,))
        return self._commit(command, ledger_pb2.Transfer, context)

    @_rpc
    def ReverseTransfer(
        self, request: ledger_pb2.ReverseTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer | bytes:
        command = v.reverse_transfer(request)
        self.tenants.check_transfers(self._tenant(), (command.transfer_id,))
        return self._commit(command, ledger_pb2.Transfer, context)

    @_rpc
    def AdjustPendingTransfer(
        self, request: ledger_pb2.AdjustPendingTransferRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.Transfer | bytes:
        command = v.adjust_pending(request)
        self.tenants.check_transfers(self._tenant(), (command.pending_id,))
        return self._commit(command, ledger_pb2.Transfer, context)

    @_rpc
    def ApplyOperations(
        self, request: ledger_pb2.ApplyOperationsRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ApplyOperationsResponse | bytes:
        batch = v.apply_operations(request)
        principal = current_principal()
        if any(isinstance(item, c.ReverseTransfer) for item in batch.items) and \
                not allows(principal.scopes, "transfers:reverse"):
            raise LedgerError(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE",
                              "reverse operations need scope transfers:reverse")
        accounts = {a for item in batch.items if isinstance(item, c.CreateTransfer)
                    for a in (item.debit_account_id, item.credit_account_id)}
        self.tenants.check_accounts(principal.tenant, accounts)
        referenced = [r for item in batch.items for r in _referenced_transfers(item)]
        self.tenants.check_transfers(principal.tenant, referenced)
        return self._commit(batch, ledger_pb2.ApplyOperationsResponse, context)

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
        account_id = v.identifier(request.id, "id")
        self.tenants.check_accounts(self._tenant(), (account_id,))
        return self.reads.get_account(account_id)

    @_rpc
    def ListAccounts(
        self, request: ledger_pb2.ListAccountsRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ListAccountsResponse:
        asset = v.asset_code(request.asset) if request.asset else None
        metadata = v.metadata(request.metadata)
        tenant = self._tenant()
        if tenant is not None:
            metadata = self.tenants.tag_metadata(tenant, metadata)
        return self.reads.list_accounts(v.page_size(request.page_size), request.page_token, asset, metadata)

    @_rpc
    def GetAccountBalance(
        self, request: ledger_pb2.GetAccountBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.AccountBalance:
        as_of = _time(request.as_of, "as_of") if request.HasField("as_of") else None
        account_id = v.identifier(request.account_id, "account_id")
        self.tenants.check_accounts(self._tenant(), (account_id,))
        return self.reads.get_balance(account_id, as_of)

    @_rpc
    def ListAccountEntries(
        self, request: ledger_pb2.ListAccountEntriesRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ListAccountEntriesResponse:
        account_id = v.identifier(request.account_id, "account_id")
        self.tenants.check_accounts(self._tenant(), (account_id,))
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
            found = self.reads.get_transfer(v.identifier(request.id, "id"), None)
        elif key == "request_id":
            found = self.reads.get_transfer(None, v.request_id(request.request_id))
        else:
            raise invalid("MISSING_FIELD", "id or request_id is required", field="key")
        self.tenants.check_accounts(
            self._tenant(), (uuid.UUID(found.debit_account_id), uuid.UUID(found.credit_account_id))
        )
        return found


def _tenant_guarded(handler: Any) -> Any:
    """Chain RPCs for a tenant-limited caller: only those naming one of its own accounts."""

    def guarded(self: LedgerService, request: Any, context: grpc.ServicerContext) -> Any:
        tenant = self._tenant()
        if tenant is not None:
            account_id = getattr(request, "account_id", "")
            if not account_id:
                raise LedgerError(grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH",
                                  "a tenant-limited caller must name one of its own accounts")
            self.tenants.check_accounts(tenant, (v.identifier(account_id, "account_id"),))
        return handler(self, request, context)

    guarded.__name__ = handler.__name__
    return guarded


# Chain RPCs (ledger_server/chain_service.py), wrapped like every handler above.
for _name in CHAIN_RPCS:
    setattr(LedgerService, _name, _rpc(_tenant_guarded(getattr(ChainRpcs, _name))))
