"""ledger-verify passes on a healthy ledger and names what is wrong on a corrupted one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import psycopg

from ledger.v1 import ledger_pb2_grpc
from tests.conftest import open_channel, start_ledger_server
from tests.ledger_api import new_account, new_asset, transfer


def run_verify(database_url: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "ledger_server.verify", "--database-url", database_url, "--json"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def test_verify_catches_a_corrupted_counter(new_database: Callable[[], str]) -> None:
    database_url = new_database()
    server = start_ledger_server(database_url)
    try:
        with open_channel(server.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            asset = new_asset(stub)
            a, b = new_account(stub, asset), new_account(stub, asset)
            transfer(stub, a.id, b.id, 100, asset)
            transfer(stub, a.id, b.id, 20, asset, pending=True)
    finally:
        server.stop()
    code, report = run_verify(database_url)
    assert code == 0 and report["ok"] is True, report
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = %s", (b.id,))
    code, report = run_verify(database_url)
    assert code == 1 and report["ok"] is False
    violations = report["violations"]
    assert isinstance(violations, dict)
    assert set(violations) == {"assets_not_balanced", "counters_not_sum_of_entries"}
    assert violations["counters_not_sum_of_entries"][0]["account_id"] == b.id
