"""The chain registry RPCs: idempotent registrations, conflicts, bad input, lists."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest
from eth_utils.address import to_checksum_address

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from tests.chain_env import random_address
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

Stub = ledger_pb2_grpc.LedgerStub


def chain_id() -> int:
    return random.randint(1_000_000, 2**40)


def register_asset(stub: Stub, chain: int, asset: str, contract: str = "", decimals: int = 2,
                   confirmations: int = 3, omnibus: str = "", request_id: str | None = None) -> chain_pb2.ChainAsset:
    found: chain_pb2.ChainAsset = stub.RegisterChainAsset(chain_pb2.RegisterChainAssetRequest(
        request_id=request_id or rid("chain-asset"), chain_id=chain, asset=asset, contract_address=contract,
        decimals=decimals, confirmations=confirmations, omnibus_account_id=omnibus,
    ))
    return found


def register_address(stub: Stub, chain: int, address: str, account: str,
                     request_id: str | None = None) -> chain_pb2.DepositAddress:
    found: chain_pb2.DepositAddress = stub.RegisterDepositAddress(chain_pb2.RegisterDepositAddressRequest(
        request_id=request_id or rid("deposit-address"), chain_id=chain, address=address, account_id=account,
    ))
    return found


def refused(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.code(), error_reason(caught.value)


def test_registering_an_asset_creates_its_omnibus_account_once_and_replays(stub: Stub) -> None:
    asset, chain = new_asset(stub), chain_id()
    request_id = rid("chain-asset")
    first = register_asset(stub, chain, asset, request_id=request_id)
    omnibus = stub.GetAccount(pb.GetAccountRequest(id=first.omnibus_account_id))
    assert omnibus.asset == asset and omnibus.credits_must_not_exceed_debits
    assert omnibus.metadata["role"] == "chain_omnibus"
    replay, call = stub.RegisterChainAsset.with_call(chain_pb2.RegisterChainAssetRequest(
        request_id=request_id, chain_id=chain, asset=asset, decimals=2, confirmations=3,
    ))
    assert replay == first and ("ledger-replayed", "true") in call.trailing_metadata()
    again = register_asset(stub, chain, asset)  # same parameters, another request id: the same registration
    assert again.omnibus_account_id == first.omnibus_account_id
    other_chain = register_asset(stub, chain_id(), asset)
    assert other_chain.omnibus_account_id != first.omnibus_account_id

    assert refused(register_asset, stub, chain, asset, "", 2, 5) == (
        grpc.StatusCode.FAILED_PRECONDITION, "CHAIN_ASSET_CONFLICT")
    code, reason = refused(stub.RegisterChainAsset, chain_pb2.RegisterChainAssetRequest(
        request_id=request_id, chain_id=chain, asset=asset, decimals=2, confirmations=9,
    ))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


def test_asset_registration_refusals(stub: Stub) -> None:
    chain, contract = chain_id(), random_address()
    token, other = new_asset(stub, scale=6), new_asset(stub, scale=6)
    register_asset(stub, chain, token, contract, decimals=6)
    assert refused(register_asset, stub, chain, other, contract, 6) == (
        grpc.StatusCode.FAILED_PRECONDITION, "CHAIN_ASSET_CONFLICT")
    assert refused(register_asset, stub, chain, other, random_address(), 18) == (
        grpc.StatusCode.FAILED_PRECONDITION, "DECIMALS_MISMATCH")
    customer = new_account(stub, other, no_overdraft=True)
    assert refused(register_asset, stub, chain, other, random_address(), 6, 3, customer.id) == (
        grpc.StatusCode.FAILED_PRECONDITION, "INVALID_OMNIBUS_ACCOUNT")

    # An asset registered before it exists is refused; once it exists, registration works.
    code = "T" + rid()[-10:].upper()
    assert refused(register_asset, stub, chain, code, random_address(), 2) == (
        grpc.StatusCode.FAILED_PRECONDITION, "ASSET_NOT_FOUND")
    stub.CreateAsset(pb.CreateAssetRequest(request_id=rid("asset"), code=code, scale=2))
    assert register_asset(stub, chain, code, random_address()).asset == code


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("chain_id", 0, "INVALID_CHAIN_ID"),
    ("confirmations", 0, "INVALID_CONFIRMATIONS"),
    ("confirmations", 1001, "INVALID_CONFIRMATIONS"),
    ("decimals", 19, "INVALID_SCALE"),
    ("contract_address", "0x1234", "INVALID_CHAIN_ADDRESS"),
    ("contract_address", "0x" + "0" * 40, "INVALID_CHAIN_ADDRESS"),
    ("contract_address", "0xAbCdEf0000000000000000000000000000000001", "INVALID_CHAIN_ADDRESS"),  # bad checksum
    ("omnibus_account_id", "not-a-uuid", "INVALID_ID"),
    ("asset", "lower", "INVALID_ASSET_CODE"),
    ("request_id", "", "INVALID_REQUEST_ID"),
])
def test_bad_asset_registrations_are_invalid_and_change_nothing(
    stub: Stub, field: str, value: object, reason: str
) -> None:
    chain = chain_id()
    request = chain_pb2.RegisterChainAssetRequest(
        request_id=rid(), chain_id=chain, asset=new_asset(stub), decimals=2, confirmations=3,
    )
    setattr(request, field, value)
    assert refused(stub.RegisterChainAsset, request) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    listed = stub.ListChainAssets(chain_pb2.ListChainAssetsRequest(chain_id=chain or 1))
    assert [a for a in listed.assets if a.chain_id == chain] == []


def test_deposit_addresses_bind_once_per_asset(stub: Stub, database_url: str) -> None:
    chain = chain_id()
    eth, usd = new_asset(stub), new_asset(stub)
    eth_registration = register_asset(stub, chain, eth)
    register_asset(stub, chain, usd, random_address())
    alice_eth, bob_eth = new_account(stub, eth, no_overdraft=True), new_account(stub, eth, no_overdraft=True)
    alice_usd = new_account(stub, usd, no_overdraft=True)
    raw = random_address()
    checksummed = to_checksum_address(raw)
    bound = register_address(stub, chain, checksummed, alice_eth.id)
    assert bound.address == raw and bound.asset == eth
    assert register_address(stub, chain, raw, alice_usd.id).asset == usd  # the same address, another asset
    assert register_address(stub, chain, raw, alice_eth.id) == bound  # again: the same binding
    assert refused(register_address, stub, chain, raw, bob_eth.id) == (
        grpc.StatusCode.FAILED_PRECONDITION, "DEPOSIT_ADDRESS_TAKEN")
    assert refused(register_address, stub, chain, random_address(), eth_registration.omnibus_account_id) == (
        grpc.StatusCode.FAILED_PRECONDITION, "SAME_ACCOUNT")
    assert refused(register_address, stub, chain_id(), random_address(), alice_eth.id) == (
        grpc.StatusCode.FAILED_PRECONDITION, "CHAIN_ASSET_NOT_FOUND")
    assert refused(register_address, stub, chain, random_address(), "01a20dae-0000-7000-8000-000000000000") == (
        grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_NOT_FOUND")
    assert refused(register_address, stub, chain, "0x" + "0" * 40, alice_eth.id) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CHAIN_ADDRESS")

    # A request id of another operation is refused; so is reusing one with another payload.
    used = transfer(stub, eth_registration.omnibus_account_id, alice_eth.id, 5, eth).request_id
    assert refused(register_address, stub, chain, random_address(), bob_eth.id, used) == (
        grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")

    # Pages: every address once, by account.
    for _ in range(4):
        register_address(stub, chain, random_address(), bob_eth.id)
    seen, token = [], ""
    while True:
        page = stub.ListDepositAddresses(chain_pb2.ListDepositAddressesRequest(
            chain_id=chain, account_id=bob_eth.id, page_size=3, page_token=token,
        ))
        seen.extend(page.addresses)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 4 and len({a.address for a in seen}) == 4 and {a.account_id for a in seen} == {bob_eth.id}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM deposit_addresses WHERE chain_id = %s", (chain,)).fetchone()
    assert rows is not None and rows[0] == 6


def test_concurrent_duplicate_registrations_execute_once(stub: Stub, database_url: str) -> None:
    chain, asset = chain_id(), new_asset(stub)
    register_asset(stub, chain, asset)
    account = new_account(stub, asset)
    address, request_id = random_address(), rid("deposit-address")
    with ThreadPoolExecutor(max_workers=16) as pool:
        same_id = list(pool.map(lambda _: register_address(stub, chain, address, account.id, request_id), range(24)))
        other_ids = list(pool.map(lambda _: register_address(stub, chain, address, account.id), range(24)))
    assert len({r.SerializeToString() for r in same_id}) == 1
    assert {(r.address, r.account_id) for r in other_ids} == {(address, account.id)}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM deposit_addresses WHERE chain_id = %s", (chain,)).fetchone()
        outcomes = conn.execute("SELECT count(*) FROM request_outcomes WHERE request_id = %s", (request_id,)).fetchone()
    assert rows is not None and rows[0] == 1
    assert outcomes is not None and outcomes[0] == 1


def test_lists_of_an_unknown_chain_are_empty(stub: Stub) -> None:
    chain = chain_id()
    assert list(stub.ListChainAlerts(chain_pb2.ListChainAlertsRequest(chain_id=chain)).alerts) == []
    assert list(stub.ListChainAssets(chain_pb2.ListChainAssetsRequest(chain_id=chain)).assets) == []
    deposits = stub.ListChainDeposits(chain_pb2.ListChainDepositsRequest(address=random_address(), chain_id=chain))
    assert list(deposits.deposits) == []
    code, reason = refused(stub.GetWithdrawal, chain_pb2.GetWithdrawalRequest(request_id=rid()))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
