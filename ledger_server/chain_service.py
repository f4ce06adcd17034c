"""gRPC handlers of the chain RPCs, mixed into ledger_server.service.LedgerService.

The mixin uses what the service already has (the group committer, the read pool, the metrics and
the `_rpc` wrapper that turns LedgerError into a rich status) and keeps its own registry objects.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import grpc
from google.protobuf import message as pb_message
from psycopg_pool import ConnectionPool

from ledger.v1 import chain_pb2
from ledger_server import chain_validation as cv
from ledger_server import validation as v
from ledger_server.chain_registry import ChainRegistry
from ledger_server.errors import invalid
from ledger_server.group_commit import Committer
from ledger_server.posting import Outcome
from ledger_server.reads import Reads
from ledger_server.withdrawal_requests import WithdrawalRequests

M = TypeVar("M", bound=pb_message.Message)
# The handlers service.py wraps with its `_rpc` (rich statuses, per-method metrics).
CHAIN_RPCS = (
    "RegisterChainAsset", "ListChainAssets", "RegisterDepositAddress", "ListDepositAddresses", "ListChainDeposits",
    "ListChainAlerts", "CreateWithdrawal", "GetWithdrawal",
)


class ChainRpcs:
    """RegisterChainAsset, RegisterDepositAddress, the chain lists, CreateWithdrawal, GetWithdrawal."""

    committer: Committer
    commit_timeout_s: float
    reads: Reads
    pool: ConnectionPool[Any]

    @functools.cached_property
    def _chain_pool(self) -> ConnectionPool[Any]:
        return self.pool  # the service's read pool, shared

    @functools.cached_property
    def chain_registry(self) -> ChainRegistry:
        return ChainRegistry(self._chain_pool, self.committer)

    @functools.cached_property
    def withdrawal_requests(self) -> WithdrawalRequests:
        return WithdrawalRequests(self._chain_pool, self.committer)

    def _timeout(self, context: grpc.ServicerContext) -> float:
        remaining = context.time_remaining()
        return self.commit_timeout_s if remaining is None else max(0.0, min(remaining, self.commit_timeout_s))

    @staticmethod
    def _answer(outcome: Outcome, response_type: type[M], context: grpc.ServicerContext) -> M:
        if outcome.replayed:
            context.set_trailing_metadata((("ledger-replayed", "true"),))
        if outcome.code != 0:
            raise outcome.error()
        return response_type.FromString(outcome.payload)

    def RegisterChainAsset(
        self, request: chain_pb2.RegisterChainAssetRequest, context: grpc.ServicerContext
    ) -> chain_pb2.ChainAsset:
        outcome = self.chain_registry.register_asset(cv.register_chain_asset(request), self._timeout(context))
        return self._answer(outcome, chain_pb2.ChainAsset, context)

    def ListChainAssets(
        self, request: chain_pb2.ListChainAssetsRequest, context: grpc.ServicerContext
    ) -> chain_pb2.ListChainAssetsResponse:
        return self.chain_registry.list_assets(
            cv.chain_id(request.chain_id, optional=True), v.page_size(request.page_size), request.page_token
        )

    def RegisterDepositAddress(
        self, request: chain_pb2.RegisterDepositAddressRequest, context: grpc.ServicerContext
    ) -> chain_pb2.DepositAddress:
        outcome = self.chain_registry.register_address(cv.register_deposit_address(request))
        return self._answer(outcome, chain_pb2.DepositAddress, context)

    def ListDepositAddresses(
        self, request: chain_pb2.ListDepositAddressesRequest, context: grpc.ServicerContext
    ) -> chain_pb2.ListDepositAddressesResponse:
        account = v.identifier(request.account_id, "account_id") if request.account_id else None
        return self.chain_registry.list_addresses(
            cv.chain_id(request.chain_id, optional=True), account, v.page_size(request.page_size), request.page_token
        )

    def ListChainDeposits(
        self, request: chain_pb2.ListChainDepositsRequest, context: grpc.ServicerContext
    ) -> chain_pb2.ListChainDepositsResponse:
        if bool(request.account_id) == bool(request.address):
            raise invalid("MISSING_FIELD", "exactly one of account_id and address is required", field="account_id")
        account = v.identifier(request.account_id, "account_id") if request.account_id else None
        address = cv.address(request.address, "address") if request.address else None
        return self.chain_registry.list_deposits(
            account, address, cv.chain_id(request.chain_id, optional=True), v.page_size(request.page_size),
            request.page_token,
        )

    def ListChainAlerts(
        self, request: chain_pb2.ListChainAlertsRequest, context: grpc.ServicerContext
    ) -> chain_pb2.ListChainAlertsResponse:
        return self.chain_registry.list_alerts(
            cv.chain_id(request.chain_id, optional=True), v.page_size(request.page_size), request.page_token
        )

    def CreateWithdrawal(
        self, request: chain_pb2.CreateWithdrawalRequest, context: grpc.ServicerContext
    ) -> chain_pb2.Withdrawal:
        outcome = self.withdrawal_requests.create(cv.create_withdrawal(request), self._timeout(context))
        return self._answer(outcome, chain_pb2.Withdrawal, context)

    def GetWithdrawal(
        self, request: chain_pb2.GetWithdrawalRequest, context: grpc.ServicerContext
    ) -> chain_pb2.Withdrawal:
        key = request.WhichOneof("key")
        if key == "id":
            return self.withdrawal_requests.get(v.identifier(request.id, "id"), None)
        if key == "request_id":
            return self.withdrawal_requests.get(None, v.request_id(request.request_id))
        raise invalid("MISSING_FIELD", "id or request_id is required", field="key")
