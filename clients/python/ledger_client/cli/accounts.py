"""`ledgerctl account create|show|list|entries`."""

from __future__ import annotations

import argparse
from typing import Any

from ledger_client.cli.arguments import add_write_options, key_value, timestamp
from ledger_client.cli.output import Output, jsonable, money, pairs, table, when
from ledger_client.client import LedgerClient
from ledger_client.results import Account, Balance, Entry

ENTRIES_ALL_MAX = 100_000  # `entries --all` stops here: a terminal is no place for more


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "account",
        help="open and inspect accounts",
        description="Accounts: four counters per account, balances derived from them.",
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser(
        "create", parents=[common], help="open an account", description="Open an account."
    )
    create.add_argument("--asset", required=True)
    flags = create.add_mutually_exclusive_group()
    flags.add_argument(
        "--no-overdraft",
        action="store_true",
        help="debits may never exceed posted credits (a customer wallet)",
    )
    flags.add_argument(
        "--no-overcredit",
        action="store_true",
        help="credits may never exceed posted debits (a funding or credit-line account)",
    )
    add_write_options(create)
    create.set_defaults(handler=create_account, parser=create)

    show = verbs.add_parser(
        "show",
        parents=[common],
        help="show an account with its balances",
        description="Show an account, its counters and balances (major units).",
    )
    show.add_argument("account_id")
    show.add_argument(
        "--as-of", type=timestamp, help="the balances as they were at this time (ISO 8601, UTC default)"
    )
    show.set_defaults(handler=show_account, parser=show)

    listing = verbs.add_parser("list", parents=[common], help="list accounts", description="List accounts.")
    listing.add_argument("--asset", help="only accounts of this asset")
    listing.add_argument(
        "--meta",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only accounts carrying this metadata (repeatable)",
    )
    listing.add_argument("--page-size", type=int, default=0, help="at most 1000 (default 100)")
    listing.add_argument("--page-token", default="")
    listing.set_defaults(handler=list_accounts, parser=listing)

    entries = verbs.add_parser(
        "entries",
        parents=[common],
        help="page through an account's entries",
        description="An account's entries, oldest first: one page, or --all.",
    )
    entries.add_argument("account_id")
    entries.add_argument("--page-size", type=int, default=0, help="at most 1000 (default 100)")
    entries.add_argument("--page-token", default="", help="from the previous page")
    entries.add_argument("--all", action="store_true", help=f"every page (at most {ENTRIES_ALL_MAX} entries)")
    entries.add_argument("--since", type=timestamp, help="from this time, inclusive (ISO 8601)")
    entries.add_argument("--until", type=timestamp, help="up to this time, exclusive (ISO 8601)")
    entries.set_defaults(handler=list_entries, parser=entries)


def _flags(account: Account) -> str:
    if account.debits_must_not_exceed_credits:
        return "no overdraft"
    if account.credits_must_not_exceed_debits:
        return "no overcredit"
    return "none"


def _account_view(account: Account, balance: Balance | None, scale: int) -> tuple[dict[str, Any], str]:
    counters: Account | Balance = balance or account
    data = jsonable(account)
    data.update(
        scale=scale,
        balances={
            "posted": str(counters.posted_balance),
            "pending": str(counters.pending_balance),
            "available": str(counters.available_balance),
        },
    )
    if balance is not None:
        data.update(jsonable(balance))
        data["version"] = balance.version

    def m(value: int) -> str:
        return money(value, scale)

    human = pairs(
        [
            ("id", account.id),
            ("asset", f"{account.asset} (scale {scale})"),
            ("posted balance", m(counters.posted_balance)),
            ("pending balance", m(counters.pending_balance)),
            ("available", m(counters.available_balance)),
            ("debits", f"posted {m(counters.debits_posted)}, pending {m(counters.debits_pending)}"),
            ("credits", f"posted {m(counters.credits_posted)}, pending {m(counters.credits_pending)}"),
            ("flags", _flags(account)),
            ("version", str(counters.version)),
            *([("as of", when(balance.as_of))] if balance is not None and balance.as_of else []),
            ("created", when(account.created_at)),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(account.metadata.items())) or "-"),
        ]
    )
    return data, human


def create_account(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    account = client.create_account(
        asset=args.asset,
        debits_must_not_exceed_credits=args.no_overdraft,
        credits_must_not_exceed_debits=args.no_overcredit,
        metadata=dict(args.meta),
        request_id=args.request_id,
    )
    data, human = _account_view(account, None, client.get_asset(code=account.asset).scale)
    out.emit(data, human)


def show_account(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    account = client.get_account(account_id=args.account_id)
    balance = client.get_account_balance(account_id=args.account_id, as_of=args.as_of) if args.as_of else None
    data, human = _account_view(account, balance, client.get_asset(code=account.asset).scale)
    out.emit(data, human)


def list_accounts(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    page = client.list_accounts(
        asset=args.asset, metadata=dict(args.meta), page_size=args.page_size, page_token=args.page_token
    )
    rows = [
        [a.id, a.asset, str(a.posted_balance), str(a.available_balance), _flags(a), str(a.version)]
        for a in page
    ]
    out.emit(
        {"items": list(page.items), "next_page_token": page.next_page_token},
        table(["ID", "ASSET", "POSTED (minor)", "AVAILABLE (minor)", "FLAGS", "VERSION"], rows, right=(2, 3)),
    )
    if page.next_page_token:
        out.note(f"more: --page-token {page.next_page_token}")


def _entry_row(entry: Entry, scale: int) -> list[str]:
    return [
        str(entry.id),
        when(entry.created_at),
        entry.kind.value,
        entry.side.value,
        money(entry.pending_change, scale),
        money(entry.posted_change, scale),
        money(entry.posted_balance, scale),
        money(entry.available_balance, scale),
        entry.transfer_id,
    ]


def list_entries(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    account = client.get_account(account_id=args.account_id)
    scale = client.get_asset(code=account.asset).scale
    entries: list[Entry] = []
    token = args.page_token
    while True:
        page = client.list_account_entries(
            account_id=args.account_id,
            page_size=args.page_size,
            page_token=token,
            start_time=args.since,
            end_time=args.until,
        )
        entries.extend(page.items)
        token = page.next_page_token
        if not args.all or page.is_last or len(entries) >= ENTRIES_ALL_MAX:
            break
    headers = ["ENTRY", "TIME", "KIND", "SIDE", "PENDING +/-", "POSTED +", "BALANCE", "AVAILABLE", "TRANSFER"]
    rows = [_entry_row(e, scale) for e in entries]
    out.emit(
        {
            "account_id": account.id,
            "asset": account.asset,
            "scale": scale,
            "items": entries,
            "next_page_token": token,
        },
        table(headers, rows, right=(4, 5, 6, 7)) if rows else "no entries",
    )
    if token:
        out.note(f"more: --page-token {token}")
