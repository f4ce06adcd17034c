import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DepositState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPOSIT_STATE_UNSPECIFIED: _ClassVar[DepositState]
    SEEN: _ClassVar[DepositState]
    CONFIRMED: _ClassVar[DepositState]
    CREDITED: _ClassVar[DepositState]
    ORPHANED: _ClassVar[DepositState]
    REVERSAL_PENDING: _ClassVar[DepositState]
    REVERSED: _ClassVar[DepositState]
    HELD: _ClassVar[DepositState]
    REJECTED: _ClassVar[DepositState]

class WithdrawalState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WITHDRAWAL_STATE_UNSPECIFIED: _ClassVar[WithdrawalState]
    WITHDRAWAL_REQUESTED: _ClassVar[WithdrawalState]
    WITHDRAWAL_HELD: _ClassVar[WithdrawalState]
    WITHDRAWAL_SIGNED: _ClassVar[WithdrawalState]
    WITHDRAWAL_SENT: _ClassVar[WithdrawalState]
    WITHDRAWAL_MINED: _ClassVar[WithdrawalState]
    WITHDRAWAL_POSTED: _ClassVar[WithdrawalState]
    WITHDRAWAL_FAILED: _ClassVar[WithdrawalState]
    WITHDRAWAL_REJECTED: _ClassVar[WithdrawalState]
DEPOSIT_STATE_UNSPECIFIED: DepositState
SEEN: DepositState
CONFIRMED: DepositState
CREDITED: DepositState
ORPHANED: DepositState
REVERSAL_PENDING: DepositState
REVERSED: DepositState
HELD: DepositState
REJECTED: DepositState
WITHDRAWAL_STATE_UNSPECIFIED: WithdrawalState
WITHDRAWAL_REQUESTED: WithdrawalState
WITHDRAWAL_HELD: WithdrawalState
WITHDRAWAL_SIGNED: WithdrawalState
WITHDRAWAL_SENT: WithdrawalState
WITHDRAWAL_MINED: WithdrawalState
WITHDRAWAL_POSTED: WithdrawalState
WITHDRAWAL_FAILED: WithdrawalState
WITHDRAWAL_REJECTED: WithdrawalState

class ChainAsset(_message.Message):
    __slots__ = ("chain_id", "asset", "contract_address", "decimals", "confirmations", "omnibus_account_id", "created_at")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    OMNIBUS_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    asset: str
    contract_address: str
    decimals: int
    confirmations: int
    omnibus_account_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., contract_address: _Optional[str] = ..., decimals: _Optional[int] = ..., confirmations: _Optional[int] = ..., omnibus_account_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterChainAssetRequest(_message.Message):
    __slots__ = ("request_id", "chain_id", "asset", "contract_address", "decimals", "confirmations", "omnibus_account_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    OMNIBUS_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    chain_id: int
    asset: str
    contract_address: str
    decimals: int
    confirmations: int
    omnibus_account_id: str
    def __init__(self, request_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., asset: _Optional[str] = ..., contract_address: _Optional[str] = ..., decimals: _Optional[int] = ..., confirmations: _Optional[int] = ..., omnibus_account_id: _Optional[str] = ...) -> None: ...

class ListChainAssetsRequest(_message.Message):
    __slots__ = ("chain_id", "page_size", "page_token")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    page_size: int
    page_token: str
    def __init__(self, chain_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChainAssetsResponse(_message.Message):
    __slots__ = ("assets", "next_page_token")
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    assets: _containers.RepeatedCompositeFieldContainer[ChainAsset]
    next_page_token: str
    def __init__(self, assets: _Optional[_Iterable[_Union[ChainAsset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DepositAddress(_message.Message):
    __slots__ = ("chain_id", "address", "account_id", "asset", "created_at")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    address: str
    account_id: str
    asset: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., address: _Optional[str] = ..., account_id: _Optional[str] = ..., asset: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterDepositAddressRequest(_message.Message):
    __slots__ = ("request_id", "chain_id", "address", "account_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    chain_id: int
    address: str
    account_id: str
    def __init__(self, request_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., address: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class ListDepositAddressesRequest(_message.Message):
    __slots__ = ("chain_id", "account_id", "page_size", "page_token")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, chain_id: _Optional[int] = ..., account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDepositAddressesResponse(_message.Message):
    __slots__ = ("addresses", "next_page_token")
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedCompositeFieldContainer[DepositAddress]
    next_page_token: str
    def __init__(self, addresses: _Optional[_Iterable[_Union[DepositAddress, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ChainDeposit(_message.Message):
    __slots__ = ("chain_id", "tx_hash", "position", "address", "account_id", "asset", "amount", "state", "block_number", "block_hash", "confirmations", "confirmations_required", "credit_transfer_id", "reversal_transfer_id", "from_address", "request_id", "first_seen_at", "updated_at")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    tx_hash: str
    position: str
    address: str
    account_id: str
    asset: str
    amount: str
    state: DepositState
    block_number: int
    block_hash: str
    confirmations: int
    confirmations_required: int
    credit_transfer_id: str
    reversal_transfer_id: str
    from_address: str
    request_id: str
    first_seen_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, chain_id: _Optional[int] = ..., tx_hash: _Optional[str] = ..., position: _Optional[str] = ..., address: _Optional[str] = ..., account_id: _Optional[str] = ..., asset: _Optional[str] = ..., amount: _Optional[str] = ..., state: _Optional[_Union[DepositState, str]] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[str] = ..., confirmations: _Optional[int] = ..., confirmations_required: _Optional[int] = ..., credit_transfer_id: _Optional[str] = ..., reversal_transfer_id: _Optional[str] = ..., from_address: _Optional[str] = ..., request_id: _Optional[str] = ..., first_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListChainDepositsRequest(_message.Message):
    __slots__ = ("account_id", "address", "chain_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    address: str
    chain_id: int
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., address: _Optional[str] = ..., chain_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChainDepositsResponse(_message.Message):
    __slots__ = ("deposits", "next_page_token")
    DEPOSITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deposits: _containers.RepeatedCompositeFieldContainer[ChainDeposit]
    next_page_token: str
    def __init__(self, deposits: _Optional[_Iterable[_Union[ChainDeposit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ChainAlert(_message.Message):
    __slots__ = ("id", "chain_id", "kind", "subject", "message", "details", "created_at")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    chain_id: int
    kind: str
    subject: str
    message: str
    details: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., chain_id: _Optional[int] = ..., kind: _Optional[str] = ..., subject: _Optional[str] = ..., message: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListChainAlertsRequest(_message.Message):
    __slots__ = ("chain_id", "page_size", "page_token")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    page_size: int
    page_token: str
    def __init__(self, chain_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChainAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_page_token")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[ChainAlert]
    next_page_token: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[ChainAlert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Withdrawal(_message.Message):
    __slots__ = ("id", "request_id", "account_id", "chain_id", "to_address", "asset", "amount", "state", "hold_id", "tx_hash", "nonce", "has_nonce", "from_address", "confirmations", "failure_reason", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    HAS_NONCE_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    account_id: str
    chain_id: int
    to_address: str
    asset: str
    amount: str
    state: WithdrawalState
    hold_id: str
    tx_hash: str
    nonce: int
    has_nonce: bool
    from_address: str
    confirmations: int
    failure_reason: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., account_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., to_address: _Optional[str] = ..., asset: _Optional[str] = ..., amount: _Optional[str] = ..., state: _Optional[_Union[WithdrawalState, str]] = ..., hold_id: _Optional[str] = ..., tx_hash: _Optional[str] = ..., nonce: _Optional[int] = ..., has_nonce: _Optional[bool] = ..., from_address: _Optional[str] = ..., confirmations: _Optional[int] = ..., failure_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWithdrawalRequest(_message.Message):
    __slots__ = ("request_id", "account_id", "chain_id", "to_address", "asset", "amount")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account_id: str
    chain_id: int
    to_address: str
    asset: str
    amount: str
    def __init__(self, request_id: _Optional[str] = ..., account_id: _Optional[str] = ..., chain_id: _Optional[int] = ..., to_address: _Optional[str] = ..., asset: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class GetWithdrawalRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
