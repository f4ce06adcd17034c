"""Bad input for the chain RPCs, in the form tests/test_bad_input.py runs: (method, request, code, reason)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from ledger.v1 import chain_pb2
from tests.ledger_api import rid

ADDRESS = "0x" + "ab" * 20
MISSING = "0189abcd-0000-7000-8000-00000000beef"


def chain_cases(w: dict[str, str]) -> Iterator[tuple[str, Any, grpc.StatusCode, str]]:
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    def asset(**overrides: Any) -> chain_pb2.RegisterChainAssetRequest:
        fields: dict[str, Any] = dict(request_id=rid(), chain_id=7, asset=w["asset"], decimals=2, confirmations=3)
        fields.update(overrides)
        return chain_pb2.RegisterChainAssetRequest(**fields)

    yield "RegisterChainAsset", asset(chain_id=0), invalid, "INVALID_CHAIN_ID"
    yield "RegisterChainAsset", asset(chain_id=2**63), invalid, "INVALID_CHAIN_ID"
    yield "RegisterChainAsset", asset(confirmations=0), invalid, "INVALID_CONFIRMATIONS"
    yield "RegisterChainAsset", asset(decimals=19), invalid, "INVALID_SCALE"
    yield "RegisterChainAsset", asset(contract_address="0xzz"), invalid, "INVALID_CHAIN_ADDRESS"
    yield "RegisterChainAsset", asset(request_id=""), invalid, "INVALID_REQUEST_ID"
    yield "RegisterDepositAddress", chain_pb2.RegisterDepositAddressRequest(
        request_id=rid(), chain_id=7, address="0x" + "0" * 40, account_id=w["a"]), invalid, "INVALID_CHAIN_ADDRESS"
    yield "RegisterDepositAddress", chain_pb2.RegisterDepositAddressRequest(
        request_id=rid(), chain_id=7, address=ADDRESS, account_id="x"), invalid, "INVALID_ID"
    yield "ListChainAssets", chain_pb2.ListChainAssetsRequest(page_size=1001), invalid, "INVALID_PAGE_SIZE"
    yield "ListDepositAddresses", chain_pb2.ListDepositAddressesRequest(account_id="x"), invalid, "INVALID_ID"
    yield "ListChainDeposits", chain_pb2.ListChainDepositsRequest(), invalid, "MISSING_FIELD"
    yield "ListChainDeposits", chain_pb2.ListChainDepositsRequest(address=ADDRESS, page_token="junk"), invalid, \
        "INVALID_PAGE_TOKEN"
    yield "ListChainAlerts", chain_pb2.ListChainAlertsRequest(page_size=5000), invalid, "INVALID_PAGE_SIZE"

    def withdrawal(**overrides: Any) -> chain_pb2.CreateWithdrawalRequest:
        fields: dict[str, Any] = dict(request_id=rid(), account_id=w["a"], chain_id=7, to_address=ADDRESS,
                                      asset=w["asset"], amount="5")
        fields.update(overrides)
        return chain_pb2.CreateWithdrawalRequest(**fields)

    yield "CreateWithdrawal", withdrawal(amount="0"), invalid, "INVALID_AMOUNT"
    yield "CreateWithdrawal", withdrawal(amount="1.5"), invalid, "INVALID_AMOUNT"
    yield "CreateWithdrawal", withdrawal(to_address="nope"), invalid, "INVALID_CHAIN_ADDRESS"
    yield "CreateWithdrawal", withdrawal(chain_id=0), invalid, "INVALID_CHAIN_ID"
    yield "CreateWithdrawal", withdrawal(account_id=""), invalid, "MISSING_FIELD"
    yield "GetWithdrawal", chain_pb2.GetWithdrawalRequest(), invalid, "MISSING_FIELD"
    yield "GetWithdrawal", chain_pb2.GetWithdrawalRequest(id=MISSING), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"
