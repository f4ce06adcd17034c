"""Validation of the chain RPCs: wire requests in, canonical commands out, or INVALID_ARGUMENT.

Addresses are answered and stored in lowercase; a mixed-case address must carry a valid EIP-55
checksum (a typo in a checksummed address is caught here instead of losing a deposit).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from ledger.v1 import chain_pb2
from ledger_server import validation as v
from ledger_server.commands import canonical_hash
from ledger_server.errors import invalid

CHAIN_ID_MAX = (1 << 63) - 1
CONFIRMATIONS_MAX = 1000
DECIMALS_MAX = 18
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
ZERO_ADDRESS = "0x" + "0" * 40


def chain_id(value: int, field: str = "chain_id", *, optional: bool = False) -> int:
    if value == 0 and optional:
        return 0
    if not 1 <= value <= CHAIN_ID_MAX:
        raise invalid("INVALID_CHAIN_ID", f"{field} must be 1..2^63-1", field=field)
    return value


def address(value: str, field: str) -> str:
    """A 20-byte address in lowercase; never the zero address."""
    if not _ADDRESS.fullmatch(value):
        raise invalid("INVALID_CHAIN_ADDRESS", f"{field} must be 0x followed by 40 hex digits", field=field)
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and to_checksum_address(value) != value:
        raise invalid("INVALID_CHAIN_ADDRESS", f"{field} has an invalid EIP-55 checksum", field=field)
    lowered = value.lower()
    if lowered == ZERO_ADDRESS:
        raise invalid("INVALID_CHAIN_ADDRESS", f"{field} must not be the zero address", field=field)
    return lowered


@dataclass(frozen=True)
class RegisterChainAsset:
    request_id: str
    chain_id: int
    asset: str
    contract_address: str  # "" for the native coin
    decimals: int
    confirmations: int
    omnibus_account_id: uuid.UUID | None
    operation = "RegisterChainAsset"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {
            "chain_id": self.chain_id, "asset": self.asset, "contract": self.contract_address,
            "decimals": self.decimals, "confirmations": self.confirmations,
            "omnibus": None if self.omnibus_account_id is None else str(self.omnibus_account_id),
        })


@dataclass(frozen=True)
class RegisterDepositAddress:
    request_id: str
    chain_id: int
    address: str
    account_id: uuid.UUID
    operation = "RegisterDepositAddress"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {
            "chain_id": self.chain_id, "address": self.address, "account_id": str(self.account_id),
        })


@dataclass(frozen=True)
class CreateWithdrawal:
    request_id: str
    account_id: uuid.UUID
    chain_id: int
    to_address: str
    asset: str
    amount: int
    operation = "CreateWithdrawal"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {
            "account_id": str(self.account_id), "chain_id": self.chain_id, "to": self.to_address,
            "asset": self.asset, "amount": str(self.amount),
        })


def register_chain_asset(request: chain_pb2.RegisterChainAssetRequest) -> RegisterChainAsset:
    rid = v.request_id(request.request_id)
    if request.decimals > DECIMALS_MAX:
        raise invalid("INVALID_SCALE", f"decimals must be 0..{DECIMALS_MAX}", field="decimals")
    if not 1 <= request.confirmations <= CONFIRMATIONS_MAX:
        raise invalid("INVALID_CONFIRMATIONS", f"confirmations must be 1..{CONFIRMATIONS_MAX}", field="confirmations")
    contract = address(request.contract_address, "contract_address") if request.contract_address else ""
    omnibus = v.identifier(request.omnibus_account_id, "omnibus_account_id") if request.omnibus_account_id else None
    return RegisterChainAsset(
        rid, chain_id(request.chain_id), v.asset_code(request.asset), contract, request.decimals,
        request.confirmations, omnibus,
    )


def register_deposit_address(request: chain_pb2.RegisterDepositAddressRequest) -> RegisterDepositAddress:
    return RegisterDepositAddress(
        v.request_id(request.request_id), chain_id(request.chain_id), address(request.address, "address"),
        v.identifier(request.account_id, "account_id"),
    )


def create_withdrawal(request: chain_pb2.CreateWithdrawalRequest) -> CreateWithdrawal:
    rid = v.request_id(request.request_id)
    value = v.amount(request.amount)
    assert value is not None
    return CreateWithdrawal(
        rid, v.identifier(request.account_id, "account_id"), chain_id(request.chain_id),
        address(request.to_address, "to_address"), v.asset_code(request.asset), value,
    )
