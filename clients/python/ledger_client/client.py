"""`LedgerClient`: the blocking SDK. One method per RPC, keyword arguments, typed results.

Every mutating method takes an optional `request_id`; without one the SDK generates a UUIDv7 once
and resends the identical request on every retry, so a retried call moves money at most once.
Every method takes `timeout`: the call's overall deadline in seconds, all retries included.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import message as pb_message

from ledger.v1 import admin_pb2, chain_pb2, events_pb2, events_service_pb2_grpc, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_client import messages
from ledger_client.call_core import DEFAULT_TIMEOUT_S, CallCore, RetryObserver, request_id_of
from ledger_client.channel import DEFAULT_TARGET, ChannelSettings, TlsSettings
from ledger_client.money import Amount, needs_scale, to_minor_units
from ledger_client.results import (
    Account,
    Asset,
    AuditRecord,
    Balance,
    BatchResult,
    Caller,
    Entry,
    NewApiKey,
    NewTransfer,
    Operation,
    Page,
    Transfer,
    Verification,
)
from ledger_client.retry import RetryPolicy
from ledger_client.status_details import error_from_rpc

M = TypeVar("M", bound=pb_message.Message)
_make_stub: Callable[[Any], Any] = ledger_pb2_grpc.LedgerStub


class LedgerClient:
    """A blocking ledger client. Thread-safe; share one per process and `close()` it at the end."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsSettings | None = None,
        settings: ChannelSettings | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        on_retry: RetryObserver | None = None,
        asset_scales: Mapping[str, int] | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        """Connect to `target`, or use `settings` (TLS, keepalive, ...) or a ready `channel`.

        `asset_scales` ({"USD": 2}) spares the scale lookup that major-unit amounts otherwise need.
        """
        if settings is None:
            settings = ChannelSettings(target=target, token=token, tls=tls)
        self._core = CallCore(settings, retry or RetryPolicy(), timeout, on_retry, asset_scales)
        self._owns_channel = channel is None
        self._channels = [settings.open(i) for i in range(settings.connections)] if channel is None else [channel]
        self._channel = self._channels[0]
        self._turn = itertools.cycle([_make_stub(c) for c in self._channels])  # the connections in turn

    @classmethod
    def from_env(cls, **kwargs: Any) -> LedgerClient:
        """A client configured from LEDGER_TARGET, LEDGER_API_KEY and LEDGER_TLS_* (docs/sdk.md)."""
        return cls(settings=ChannelSettings.from_env(), **kwargs)

    def close(self) -> None:
        if self._owns_channel:
            for channel in self._channels:
                channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the retry loop ---------------------------------------------------------------------------

    def _invoke(self, method: str, request: pb_message.Message, response_type: type[M], deadline: float) -> M:
        """Send `request` until it succeeds, fails for good, or attempts / deadline run out."""
        multicallable = getattr(next(self._turn), method)
        request_id = request_id_of(request)
        self._core.check_size(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = multicallable(
                    request, timeout=self._core.attempt_timeout(deadline), metadata=self._core.metadata
                )
                assert isinstance(response, response_type), type(response)
                return response
            except grpc.RpcError as rpc_error:
                error = error_from_rpc(rpc_error, request_id=request_id, attempts=attempt)
                cause: BaseException = rpc_error
            delay = self._core.delay_before_retry(method, attempt, error, deadline)
            if delay is None:
                raise error from cause
            time.sleep(delay)

    def _scale(self, asset: str, deadline: float) -> int:
        scale = self._core.scales.get(asset)
        if scale is None:
            scale = self._invoke("GetAsset", pb.GetAssetRequest(code=asset), pb.Asset, deadline).scale
            self._core.remember_scale(asset, scale)
        return scale

    def _minor(self, amount: Amount, asset: str, deadline: float, field: str = "amount") -> int:
        scale = self._scale(asset, deadline) if needs_scale(amount) else None
        return to_minor_units(amount, scale, field)

    def _minor_of_transfer(self, amount: Amount | None, transfer_id: str, deadline: float) -> int | None:
        """An optional amount for post/reverse; major units need the transfer's asset (one read)."""
        if amount is None:
            return None
        if not needs_scale(amount):
            return to_minor_units(amount, None)
        request = pb.GetTransferRequest(id=transfer_id)
        asset = self._invoke("GetTransfer", request, pb.Transfer, deadline).asset
        return self._minor(amount, asset, deadline)

    # -- assets -----------------------------------------------------------------------------------

    def create_asset(
        self, *, code: str, scale: int, request_id: str | None = None, timeout: float | None = None
    ) -> Asset:
        """Create an asset (unit of account) with `scale` digits after the point (USD: 2)."""
        deadline = self._core.deadline(timeout)
        request = messages.create_asset(code=code, scale=scale, request_id=request_id)
        asset = Asset.from_proto(self._invoke("CreateAsset", request, pb.Asset, deadline))
        self._core.remember_scale(asset.code, asset.scale)
        return asset

    def get_asset(self, *, code: str, timeout: float | None = None) -> Asset:
        deadline = self._core.deadline(timeout)
        asset = Asset.from_proto(self._invoke("GetAsset", pb.GetAssetRequest(code=code), pb.Asset, deadline))
        self._core.remember_scale(asset.code, asset.scale)
        return asset

    def list_assets(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> Page[Asset]:
        deadline = self._core.deadline(timeout)
        request = pb.ListAssetsRequest(page_size=page_size, page_token=page_token)
        response = self._invoke("ListAssets", request, pb.ListAssetsResponse, deadline)
        return Page(tuple(Asset.from_proto(a) for a in response.assets), response.next_page_token)

    def iter_assets(self, *, page_size: int = 0, timeout: float | None = None) -> Iterator[Asset]:
        """Every asset, page by page (`timeout` applies to each page)."""
        token = ""
        while True:
            page = self.list_assets(page_size=page_size, page_token=token, timeout=timeout)
            yield from page
            if page.is_last:
                return
            token = page.next_page_token

    # -- accounts ---------------------------------------------------------------------------------

    def create_account(
        self,
        *,
        asset: str,
        debits_must_not_exceed_credits: bool = False,
        credits_must_not_exceed_debits: bool = False,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Account:
        """Open an account. `debits_must_not_exceed_credits=True` makes a no-overdraft wallet."""
        deadline = self._core.deadline(timeout)
        request = messages.create_account(
            asset=asset, debits_must_not_exceed_credits=debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=credits_must_not_exceed_debits, metadata_=metadata,
            request_id=request_id,
        )
        return Account.from_proto(self._invoke("CreateAccount", request, pb.Account, deadline))

    def get_account(self, *, account_id: str, timeout: float | None = None) -> Account:
        deadline = self._core.deadline(timeout)
        request = pb.GetAccountRequest(id=account_id)
        return Account.from_proto(self._invoke("GetAccount", request, pb.Account, deadline))

    def list_accounts(
        self,
        *,
        asset: str | None = None,
        metadata: Mapping[str, str] | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[Account]:
        deadline = self._core.deadline(timeout)
        request = messages.list_accounts(
            asset=asset, metadata_=metadata, page_size=page_size, page_token=page_token
        )
        response = self._invoke("ListAccounts", request, pb.ListAccountsResponse, deadline)
        return Page(tuple(Account.from_proto(a) for a in response.accounts), response.next_page_token)

    def iter_accounts(
        self,
        *,
        asset: str | None = None,
        metadata: Mapping[str, str] | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[Account]:
        token = ""
        while True:
            page = self.list_accounts(asset=asset, metadata=metadata, page_size=page_size, page_token=token,
                                      timeout=timeout)
            yield from page
            if page.is_last:
                return
            token = page.next_page_token

    def get_account_balance(
        self, *, account_id: str, as_of: dt.datetime | None = None, timeout: float | None = None
    ) -> Balance:
        """The account's counters now, or as they were at `as_of` (an aware datetime)."""
        deadline = self._core.deadline(timeout)
        request = messages.get_account_balance(account_id=account_id, as_of=as_of)
        return Balance.from_proto(self._invoke("GetAccountBalance", request, pb.AccountBalance, deadline))

    def list_account_entries(
        self,
        *,
        account_id: str,
        page_size: int = 0,
        page_token: str = "",
        start_time: dt.datetime | None = None,
        end_time: dt.datetime | None = None,
        timeout: float | None = None,
    ) -> Page[Entry]:
        """One page of the account's entries, oldest first."""
        deadline = self._core.deadline(timeout)
        request = messages.list_account_entries(
            account_id=account_id, page_size=page_size, page_token=page_token, start_time=start_time,
            end_time=end_time,
        )
        response = self._invoke("ListAccountEntries", request, pb.ListAccountEntriesResponse, deadline)
        return Page(tuple(Entry.from_proto(e) for e in response.entries), response.next_page_token)

    def iter_account_entries(
        self,
        *,
        account_id: str,
        page_size: int = 0,
        start_time: dt.datetime | None = None,
        end_time: dt.datetime | None = None,
        timeout: float | None = None,
    ) -> Iterator[Entry]:
        token = ""
        while True:
            page = self.list_account_entries(
                account_id=account_id, page_size=page_size, page_token=token, start_time=start_time,
                end_time=end_time, timeout=timeout,
            )
            yield from page
            if page.is_last:
                return
            token = page.next_page_token

    # -- transfers --------------------------------------------------------------------------------

    def create_transfer(
        self,
        *,
        debit_account_id: str,
        credit_account_id: str,
        amount: Amount,
        asset: str,
        pending: bool = False,
        hold_timeout_seconds: int = 0,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Transfer:
        """Move `amount` from the debit to the credit account; `pending=True` places a hold instead."""
        deadline = self._core.deadline(timeout)
        request = messages.create_transfer(
            debit_account_id=debit_account_id, credit_account_id=credit_account_id,
            amount=self._minor(amount, asset, deadline), asset=asset, pending=pending,
            hold_timeout_seconds=hold_timeout_seconds, metadata_=metadata, request_id=request_id,
        )
        return Transfer.from_proto(self._invoke("CreateTransfer", request, pb.Transfer, deadline))

    def create_transfers(
        self,
        *,
        transfers: Sequence[NewTransfer],
        atomic: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> BatchResult:
        """Many transfers in one request (1..8000). Items without a request_id get one each.

        Per-item failures come back as typed errors in the result (`BatchResult.errors`); with
        `atomic=True` all items commit or none do.
        """
        deadline = self._core.deadline(timeout)
        items = [
            messages.create_transfer(
                debit_account_id=t.debit_account_id, credit_account_id=t.credit_account_id,
                amount=self._minor(t.amount, t.asset, deadline, f"transfers[{i}].amount"), asset=t.asset,
                pending=t.pending, hold_timeout_seconds=t.hold_timeout_seconds, metadata_=t.metadata,
                request_id=t.request_id, field=f"transfers[{i}].request_id",
            )
            for i, t in enumerate(transfers)
        ]
        request = messages.create_transfers(items=items, atomic=atomic, request_id=request_id)
        response = self._invoke("CreateTransfers", request, pb.CreateTransfersResponse, deadline)
        return BatchResult.from_proto(response, tuple(item.request_id for item in items))

    def post_pending_transfer(
        self,
        *,
        pending_id: str,
        amount: Amount | None = None,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Transfer:
        """Settle a hold: all of it, or `amount` of it (the rest is released)."""
        deadline = self._core.deadline(timeout)
        request = messages.post_pending(
            pending_id=pending_id, amount=self._minor_of_transfer(amount, pending_id, deadline),
            metadata_=metadata, request_id=request_id,
        )
        return Transfer.from_proto(self._invoke("PostPendingTransfer", request, pb.Transfer, deadline))

    def void_pending_transfer(
        self,
        *,
        pending_id: str,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Transfer:
        """Release a hold entirely."""
        deadline = self._core.deadline(timeout)
        request = messages.void_pending(pending_id=pending_id, metadata_=metadata, request_id=request_id)
        return Transfer.from_proto(self._invoke("VoidPendingTransfer", request, pb.Transfer, deadline))

    def reverse_transfer(
        self,
        *,
        transfer_id: str,
        amount: Amount | None = None,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Transfer:
        """Compensate a posted transfer (all that is left of it, or `amount`) with a reversing entry."""
        deadline = self._core.deadline(timeout)
        request = messages.reverse_transfer(
            transfer_id=transfer_id, amount=self._minor_of_transfer(amount, transfer_id, deadline),
            metadata_=metadata, request_id=request_id,
        )
        return Transfer.from_proto(self._invoke("ReverseTransfer", request, pb.Transfer, deadline))

    def adjust_pending_transfer(
        self,
        *,
        pending_id: str,
        amount: int,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Transfer:
        """Set a hold to a new total of `amount` minor units (incremental authorization, partial reversal)."""
        deadline = self._core.deadline(timeout)
        request = messages.adjust_pending(
            pending_id=pending_id, amount=to_minor_units(amount, None), metadata_=metadata, request_id=request_id,
        )
        return Transfer.from_proto(self._invoke("AdjustPendingTransfer", request, pb.Transfer, deadline))

    def apply_operations(
        self,
        *,
        operations: Sequence[Operation],
        atomic: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> BatchResult:
        """Mixed operations (NewTransfer, PostPending, VoidPending, Reverse, AdjustPending) in one request.

        Amounts of operations on existing transfers are int minor units. Items without a request_id get
        one each (kept across retries); with `atomic=True` all commit or none do.
        """
        deadline = self._core.deadline(timeout)
        items = [
            messages.operation(item, index, self._minor(item.amount, item.asset, deadline,
                                                        f"operations[{index}].amount")
                               if isinstance(item, NewTransfer) else None)
            for index, item in enumerate(operations)
        ]
        request = messages.apply_operations(operations=items, atomic=atomic, request_id=request_id)
        response = self._invoke("ApplyOperations", request, pb.ApplyOperationsResponse, deadline)
        return BatchResult.from_proto(response, tuple(messages.operation_request_id(i) for i in items))

    def get_transfer(
        self, *, transfer_id: str | None = None, request_id: str | None = None, timeout: float | None = None
    ) -> Transfer:
        """A transfer by its id, or by the request id that created it (exactly one of the two)."""
        deadline = self._core.deadline(timeout)
        request = messages.get_transfer(transfer_id=transfer_id, request_id=request_id)
        return Transfer.from_proto(self._invoke("GetTransfer", request, pb.Transfer, deadline))

    # -- access control, audit, verification (scope `admin`) --------------------------------------

    def create_api_key(
        self,
        *,
        name: str,
        scopes: Sequence[str],
        tenant: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> NewApiKey:
        """Issue an API key. Its secret is in the first response only: store it before anything else."""
        deadline = self._core.deadline(timeout)
        request = messages.create_api_key(name=name, scopes=scopes, tenant=tenant, request_id=request_id)
        return NewApiKey.from_proto(self._invoke("CreateApiKey", request, admin_pb2.CreateApiKeyResponse, deadline))

    def create_certificate_caller(
        self,
        *,
        name: str,
        certificate_subject: str,
        scopes: Sequence[str],
        tenant: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Caller:
        """Admit TLS clients whose certificate subject common name is `certificate_subject`."""
        deadline = self._core.deadline(timeout)
        request = messages.create_certificate_caller(
            name=name, certificate_subject=certificate_subject, scopes=scopes, tenant=tenant, request_id=request_id
        )
        return Caller.from_proto(self._invoke("CreateCertificateCaller", request, admin_pb2.Caller, deadline))

    def revoke_caller(self, *, caller_id: str, request_id: str | None = None, timeout: float | None = None) -> Caller:
        deadline = self._core.deadline(timeout)
        request = admin_pb2.RevokeCallerRequest(request_id=messages.request_id_or_new(request_id), caller_id=caller_id)
        return Caller.from_proto(self._invoke("RevokeCaller", request, admin_pb2.Caller, deadline))

    def list_callers(self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None) -> Page[Caller]:
        deadline = self._core.deadline(timeout)
        request = admin_pb2.ListCallersRequest(page_size=page_size, page_token=page_token)
        response = self._invoke("ListCallers", request, admin_pb2.ListCallersResponse, deadline)
        return Page(tuple(Caller.from_proto(c) for c in response.callers), response.next_page_token)

    def list_audit_records(
        self,
        *,
        caller: str | None = None,
        start_time: dt.datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[AuditRecord]:
        deadline = self._core.deadline(timeout)
        request = messages.list_audit_records(
            caller=caller, start_time=start_time, page_size=page_size, page_token=page_token
        )
        response = self._invoke("ListAuditRecords", request, admin_pb2.ListAuditRecordsResponse, deadline)
        return Page(tuple(AuditRecord.from_proto(r) for r in response.records), response.next_page_token)

    def verify_ledger(self, *, timeout: float | None = None) -> Verification:
        """Check every ledger invariant on the live database (may take a while: pass a timeout)."""
        deadline = self._core.deadline(timeout)
        request = admin_pb2.VerifyLedgerRequest()
        return Verification.from_proto(self._invoke("VerifyLedger", request, admin_pb2.VerifyLedgerResponse, deadline))



    # -- events (service ledger.v1.LedgerEvents; docs/events.md) ----------------------------------

    def watch_events(
        self, *, after_sequence: int = 0, event_types: Sequence[str] = (), account_ids: Sequence[str] = (),
        timeout: float | None = None,
    ) -> Iterator[events_pb2.LedgerEvent]:
        """Stream events after `after_sequence` in sequence order, backlog then live. Not retried:
        resume by calling again with the last sequence you processed (nothing is missed or repeated).
        `timeout` None streams until the caller stops iterating."""
        request = events_pb2.WatchEventsRequest(
            after_sequence=after_sequence, event_types=list(event_types),
            account_ids=list(account_ids),
        )
        stub = events_service_pb2_grpc.LedgerEventsStub(self._channel)
        try:
            yield from stub.WatchEvents(request, timeout=timeout, metadata=self._core.metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    # -- chain (protobuf messages of ledger.v1 chain.proto; docs/chain.md) ------------------------

    def register_chain_asset(
        self, *, chain_id: int, asset: str, decimals: int, confirmations: int, contract_address: str = "",
        omnibus_account_id: str = "", request_id: str | None = None, timeout: float | None = None,
    ) -> chain_pb2.ChainAsset:
        """Watch an asset on a chain (empty contract_address: the native coin)."""
        request = chain_pb2.RegisterChainAssetRequest(
            request_id=messages.request_id_or_new(request_id), chain_id=chain_id, asset=asset,
            contract_address=contract_address, decimals=decimals, confirmations=confirmations,
            omnibus_account_id=omnibus_account_id,
        )
        return self._invoke("RegisterChainAsset", request, chain_pb2.ChainAsset, self._core.deadline(timeout))

    def list_chain_assets(
        self, *, chain_id: int = 0, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> chain_pb2.ListChainAssetsResponse:
        request = chain_pb2.ListChainAssetsRequest(chain_id=chain_id, page_size=page_size, page_token=page_token)
        return self._invoke(
            "ListChainAssets", request, chain_pb2.ListChainAssetsResponse, self._core.deadline(timeout))

    def register_deposit_address(
        self, *, chain_id: int, address: str, account_id: str, request_id: str | None = None,
        timeout: float | None = None,
    ) -> chain_pb2.DepositAddress:
        request = chain_pb2.RegisterDepositAddressRequest(
            request_id=messages.request_id_or_new(request_id), chain_id=chain_id, address=address,
            account_id=account_id,
        )
        return self._invoke(
            "RegisterDepositAddress", request, chain_pb2.DepositAddress, self._core.deadline(timeout))

    def list_deposit_addresses(
        self, *, chain_id: int = 0, account_id: str = "", page_size: int = 0, page_token: str = "",
        timeout: float | None = None,
    ) -> chain_pb2.ListDepositAddressesResponse:
        request = chain_pb2.ListDepositAddressesRequest(
            chain_id=chain_id, account_id=account_id, page_size=page_size, page_token=page_token)
        return self._invoke(
            "ListDepositAddresses", request, chain_pb2.ListDepositAddressesResponse, self._core.deadline(timeout))

    def list_chain_deposits(
        self, *, account_id: str = "", address: str = "", chain_id: int = 0, page_size: int = 0,
        page_token: str = "", timeout: float | None = None,
    ) -> chain_pb2.ListChainDepositsResponse:
        """Deposits seen for an account or an address (exactly one), with state and confirmations."""
        request = chain_pb2.ListChainDepositsRequest(
            account_id=account_id, address=address, chain_id=chain_id, page_size=page_size, page_token=page_token)
        return self._invoke(
            "ListChainDeposits", request, chain_pb2.ListChainDepositsResponse, self._core.deadline(timeout))

    def list_chain_alerts(
        self, *, chain_id: int = 0, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> chain_pb2.ListChainAlertsResponse:
        request = chain_pb2.ListChainAlertsRequest(chain_id=chain_id, page_size=page_size, page_token=page_token)
        return self._invoke(
            "ListChainAlerts", request, chain_pb2.ListChainAlertsResponse, self._core.deadline(timeout))

    def create_withdrawal(
        self, *, account_id: str, chain_id: int, to_address: str, asset: str, amount: int,
        request_id: str | None = None, timeout: float | None = None,
    ) -> chain_pb2.Withdrawal:
        """Hold `amount` minor units and queue an on-chain withdrawal (sent by ledger-chain-signer)."""
        request = chain_pb2.CreateWithdrawalRequest(
            request_id=messages.request_id_or_new(request_id), account_id=account_id, chain_id=chain_id,
            to_address=to_address, asset=asset, amount=str(to_minor_units(amount, None)),
        )
        return self._invoke("CreateWithdrawal", request, chain_pb2.Withdrawal, self._core.deadline(timeout))

    def get_withdrawal(
        self, *, withdrawal_id: str | None = None, request_id: str | None = None, timeout: float | None = None
    ) -> chain_pb2.Withdrawal:
        if (withdrawal_id is None) == (request_id is None):
            raise TypeError("pass exactly one of withdrawal_id and request_id")
        request = (chain_pb2.GetWithdrawalRequest(id=withdrawal_id) if withdrawal_id is not None
                   else chain_pb2.GetWithdrawalRequest(request_id=request_id))
        return self._invoke("GetWithdrawal", request, chain_pb2.Withdrawal, self._core.deadline(timeout))
