"""ledgerctl drives a full flow against a real server; its --json output parses; failures exit non-zero."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger_client.cli.app import (
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    build_parser,
    main,
)
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY, free_port
from tests.fake_ledger import FakeServer, Respond


def ledgerctl(target: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as an operator would (the target comes from LEDGER_TARGET)."""
    env = {**os.environ, "LEDGER_TARGET": target, "LEDGER_API_KEY": ADMIN_KEY}
    script = os.path.join(os.path.dirname(sys.executable), "ledgerctl")
    done = subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done


def as_json(target: str, *args: str) -> Any:
    return json.loads(ledgerctl(target, *args, "--json").stdout)


def test_a_full_flow_with_json_output(ledger_server: LedgerServer) -> None:
    target = ledger_server.target
    code = "CTL" + uuid.uuid4().hex[:8].upper()

    asset = as_json(target, "asset", "create", code, "--scale", "2")
    assert (asset["code"], asset["scale"]) == (code, 2)
    funding = as_json(target, "account", "create", "--asset", code, "--meta", "role=funding")
    wallet = as_json(target, "account", "create", "--asset", code, "--no-overdraft", "--meta", "owner=alice")
    assert wallet["debits_must_not_exceed_credits"] is True and wallet["metadata"] == {"owner": "alice"}

    funded = as_json(target, "transfer", "create", "--debit", funding["id"], "--credit", wallet["id"],
                     "--amount", "100.00", "--asset", code, "--request-id", f"fund-{code}")
    assert (funded["amount"], funded["state"], funded["request_id"]) == ("10000", "POSTED", f"fund-{code}")

    hold = as_json(target, "transfer", "hold", "--debit", wallet["id"], "--credit", funding["id"],
                   "--amount", "30", "--asset", code, "--expires-in", "3600")
    assert (hold["kind"], hold["state"], hold["amount"]) == ("HOLD", "PENDING", "3000")
    assert hold["expires_at"] is not None

    posted = as_json(target, "transfer", "post", hold["id"], "--amount", "12.50")
    assert (posted["kind"], posted["amount"], posted["pending_id"]) == ("POST_PENDING", "1250", hold["id"])

    reversal = as_json(target, "transfer", "reverse", posted["id"], "--amount", "250", "--minor")
    assert (reversal["kind"], reversal["amount"]) == ("REVERSAL", "250")
    assert reversal["reverses_transfer_id"] == posted["id"]

    shown = as_json(target, "account", "show", wallet["id"])
    assert shown["balances"] == {"posted": "9000", "pending": "0", "available": "9000"}
    assert (shown["credits_posted"], shown["debits_posted"], shown["version"]) == ("10250", "1250", 4)

    first_page = as_json(target, "account", "entries", wallet["id"], "--page-size", "2")
    assert len(first_page["items"]) == 2 and first_page["next_page_token"]
    everything = as_json(target, "account", "entries", wallet["id"], "--page-size", "2", "--all")
    kinds = [(e["kind"], e["side"], e["posted_change"], e["pending_change"]) for e in everything["items"]]
    assert kinds == [
        ("SINGLE_PHASE", "CREDIT", "10000", "0"),
        ("HOLD", "DEBIT", "0", "3000"),
        ("POST_PENDING", "DEBIT", "1250", "-3000"),
        ("REVERSAL", "CREDIT", "250", "0"),
    ]
    assert everything["next_page_token"] == "" and everything["scale"] == 2
    rest = as_json(target, "account", "entries", wallet["id"], "--page-token", first_page["next_page_token"])
    assert [e["id"] for e in rest["items"]] == [e["id"] for e in everything["items"][2:]]

    listed = as_json(target, "account", "list", "--asset", code)
    assert {a["id"] for a in listed["items"]} == {funding["id"], wallet["id"]}
    owned = as_json(target, "account", "list", "--asset", code, "--meta", "owner=alice")
    assert [a["id"] for a in owned["items"]] == [wallet["id"]]

    again = as_json(target, "transfer", "show", "--by-request-id", f"fund-{code}")
    assert again["id"] == funded["id"]

    human = ledgerctl(target, "account", "show", wallet["id"]).stdout
    assert "90.00" in human and "no overdraft" in human
    table = ledgerctl(target, "account", "entries", wallet["id"]).stdout
    assert "REVERSAL" in table and "-30.00" in table and "12.50" in table

    refused = ledgerctl(target, "transfer", "create", "--debit", wallet["id"], "--credit", funding["id"],
                        "--amount", "1000", "--asset", code, "--json", check=False)
    assert refused.returncode == EXIT_REFUSED and refused.stdout == ""
    error = json.loads(refused.stderr)["error"]
    assert (error["reason"], error["code"], error["type"]) == ("INSUFFICIENT_FUNDS", "FAILED_PRECONDITION",
                                                               "InsufficientFunds")

    inexact = ledgerctl(target, "transfer", "create", "--debit", funding["id"], "--credit", wallet["id"],
                        "--amount", "1.234", "--asset", code, check=False)
    assert inexact.returncode == EXIT_USAGE and "INVALID_AMOUNT" in inexact.stderr


def test_an_unreachable_ledger_exits_4_and_names_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{free_port()}"
    code = main(["--target", target, "--timeout", "0.5", "transfer", "void", str(uuid.uuid4()),
                 "--request-id", "void-1"])
    assert code == EXIT_UNAVAILABLE
    assert "--request-id void-1" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["transfer", "create", "--debit", "a"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["transfer", "post", str(uuid.uuid4()), "--amount", "12.5", "--minor"])
    assert exited.value.code == EXIT_USAGE
    assert "integer of minor units" in capsys.readouterr().err


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_leaf_commands(sub, (*prefix, name)))
    return found


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _leaf_commands(build_parser())
    assert ("account", "entries") in commands and ("transfer", "reverse") in commands and len(commands) >= 17
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0, command
        assert "usage: ledgerctl" in capsys.readouterr().out


def test_listings_render_against_a_scripted_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    """Tables and JSON of the list commands, with pages, against the in-process fake."""
    account = pb.Account(
        id="01900000-0000-7000-8000-00000000000a", asset="EUR", credits_posted="12345",
        debits_pending="45", debits_must_not_exceed_credits=True, version=7,
    )
    with FakeServer() as fake:
        fake.ledger.then(Respond(pb.ListAccountsResponse(accounts=[account], next_page_token="p2")))
        argv = ["--target", fake.target, "account", "list", "--asset", "EUR", "--meta", "owner=bob"]
        assert main(argv) == 0
        printed = capsys.readouterr()
        assert "12345" in printed.out and "12300" in printed.out and "no overdraft" in printed.out
        assert "--page-token p2" in printed.err
        request = fake.ledger.attempts[0].request
        assert (request.asset, dict(request.metadata)) == ("EUR", {"owner": "bob"})

        fake.ledger.then(Respond(pb.ListAssetsResponse(assets=[pb.Asset(code="EUR", scale=2)])))
        assert main(["asset", "list", "--json", "--target", fake.target]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed["items"][0]["code"] == "EUR" and listed["next_page_token"] == ""


def test_events_tail(ledger_server: LedgerServer) -> None:
    target = ledger_server.target
    code = "EVT" + uuid.uuid4().hex[:8].upper()
    as_json(target, "asset", "create", code, "--scale", "2")
    funding = as_json(target, "account", "create", "--asset", code)
    wallet = as_json(target, "account", "create", "--asset", code)
    as_json(target, "transfer", "create", "--debit", funding["id"], "--credit", wallet["id"],
            "--amount", "1.00", "--asset", code)
    done = ledgerctl(target, "events", "tail", "--account", wallet["id"], "--limit", "2", "--json")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["ACCOUNT_CREATED", "TRANSFER_POSTED"]
    assert int(events[1]["sequence"]) > int(events[0]["sequence"])
    human = ledgerctl(target, "events", "tail", "--account", wallet["id"], "--limit", "2").stdout
    assert "TRANSFER_POSTED" in human
