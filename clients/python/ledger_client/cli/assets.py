"""`ledgerctl asset create|show|list`."""

from __future__ import annotations

import argparse
from typing import Any

from ledger_client.cli.arguments import add_write_options
from ledger_client.cli.output import Output, pairs, table, when
from ledger_client.client import LedgerClient
from ledger_client.results import Asset


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "asset", help="create and inspect assets", description="Assets: units of account."
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser(
        "create",
        parents=[common],
        help="create an asset",
        description="Create an asset (e.g. USD with scale 2: 1 USD = 100 minor units).",
    )
    create.add_argument("code", help="1..16 of A-Z, 0-9, _ (e.g. USD, USDC, ETH)")
    create.add_argument("--scale", type=int, required=True, help="digits after the point, 0..18 (USD: 2)")
    add_write_options(create)
    create.set_defaults(handler=create_asset, parser=create)

    show = verbs.add_parser("show", parents=[common], help="show one asset", description="Show one asset.")
    show.add_argument("code")
    show.set_defaults(handler=show_asset, parser=show)

    listing = verbs.add_parser(
        "list", parents=[common], help="list assets", description="List assets, a page at a time."
    )
    listing.add_argument("--page-size", type=int, default=0, help="at most 1000 (default 100)")
    listing.add_argument("--page-token", default="", help="from the previous page")
    listing.set_defaults(handler=list_assets, parser=listing)


def _human(asset: Asset) -> str:
    return pairs([("code", asset.code), ("scale", str(asset.scale)), ("created", when(asset.created_at))])


def create_asset(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    if args.meta:
        args.parser.error("assets carry no metadata")
    asset = client.create_asset(code=args.code, scale=args.scale, request_id=args.request_id)
    out.emit(asset, _human(asset))


def show_asset(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    asset = client.get_asset(code=args.code)
    out.emit(asset, _human(asset))


def list_assets(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    page = client.list_assets(page_size=args.page_size, page_token=args.page_token)
    rows = [[a.code, str(a.scale), when(a.created_at)] for a in page]
    out.emit(
        {"items": list(page.items), "next_page_token": page.next_page_token},
        table(["CODE", "SCALE", "CREATED"], rows),
    )
    if page.next_page_token:
        out.note(f"more: --page-token {page.next_page_token}")
