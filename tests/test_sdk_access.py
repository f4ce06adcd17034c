"""The SDK against the ledger's access control: keys, scopes, revocation, audit and verification."""

from __future__ import annotations

import uuid

import pytest

from ledger_client import LedgerClient, errors
from ledger_client.cli.app import EXIT_DENIED, main
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY


def test_a_call_without_credentials_is_refused_once(ledger_server: LedgerServer) -> None:
    with LedgerClient(ledger_server.target) as anonymous, pytest.raises(errors.Unauthenticated) as refused:
        anonymous.list_assets()
    assert refused.value.reason == "INVALID_CREDENTIALS" and refused.value.attempts == 1


def test_scoped_keys_revocation_audit_and_verification(ledger_server: LedgerServer) -> None:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as admin:
        code = "AC" + uuid.uuid4().hex[:8].upper()
        admin.create_asset(code=code, scale=2)
        source = admin.create_account(asset=code).id
        target = admin.create_account(asset=code).id

        request_id = f"key-{code}"
        issued = admin.create_api_key(name="card gateway", scopes=["transfers:write"], request_id=request_id)
        assert issued.key and issued.caller.scopes == ("transfers:write",) and issued.caller.kind == "api_key"
        replayed = admin.create_api_key(name="card gateway", scopes=["transfers:write"], request_id=request_id)
        assert replayed.caller.id == issued.caller.id and replayed.key == ""  # the secret is shown once

        with LedgerClient(ledger_server.target, token=issued.key) as gateway:
            gateway.create_transfer(debit_account_id=source, credit_account_id=target, amount=100, asset=code)
            with pytest.raises(errors.MissingScope):  # "1.00" needs the scale: GetAsset needs accounts:read
                gateway.create_transfer(debit_account_id=source, credit_account_id=target, amount="1.00", asset=code)
        with LedgerClient(ledger_server.target, token=issued.key, asset_scales={code: 2}) as gateway:
            done = gateway.create_transfer(debit_account_id=source, credit_account_id=target, amount="1.00", asset=code)
            assert done.amount == 100

            revoked = admin.revoke_caller(caller_id=issued.caller.id)
            assert revoked.revoked_at is not None
            with pytest.raises(errors.InvalidCredentials):
                gateway.create_transfer(debit_account_id=source, credit_account_id=target, amount=1, asset=code)
        with pytest.raises(errors.CallerAlreadyRevoked):
            admin.revoke_caller(caller_id=issued.caller.id)

        assert issued.caller.id in {caller.id for caller in admin.list_callers(page_size=1000)}
        records = admin.list_audit_records(caller=issued.caller.id, page_size=1000)
        assert {r.operation for r in records} >= {"CreateTransfer"} and all(r.code == 0 for r in records)
        verification = admin.verify_ledger(timeout=60)
        assert verification.ok and verification.checked and verification.violations == ()


def test_ledgerctl_without_a_key_exits_5(ledger_server: LedgerServer, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_API_KEY", raising=False)
    assert main(["--target", ledger_server.target, "asset", "list"]) == EXIT_DENIED
    assert "INVALID_CREDENTIALS" in capsys.readouterr().err
