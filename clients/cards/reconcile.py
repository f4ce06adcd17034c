"""Daily settlement reconciliation: the processor's settlement file against the ledger.

Each settlement record (a clearing, return or return reversal, by event token) is matched with the
event we applied and with the transfers the ledger holds for it (read back through the API, not from
our own table). Differences are reported with a proposed compensating entry each: operations with
deterministic request ids (`card-recon:{date}:{event}:{n}`). `reconcile` never posts anything;
`post_proposals` (`ledger-card-gateway post-proposals`) posts the proposals an operator names after
review, each as one atomic batch, with the reviewer recorded on every transfer. The request ids make
posting twice post once; a second reviewer posting the same proposal is refused by the ledger
(IDEMPOTENCY_KEY_REUSED: it is already posted).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger_cards import queries
from ledger_cards.model import ProgramRole
from ledger_cards.schema import SchemaError
from ledger_client import AsyncLedgerClient, LedgerError, NewTransfer, Operation, Reverse

Q = queries.load("cards")
SETTLED_TYPES = ("clearing", "return", "return.reversal")
RECORDS_MAX = 1_000_000


@dataclass(frozen=True)
class SettlementRecord:
    event_token: str
    transaction_token: str
    card_token: str
    type: str
    amount: int
    interchange: int
    network_fee: int


def parse_file(data: dict[str, Any]) -> tuple[dt.date, str, list[SettlementRecord]]:
    try:
        day = dt.date.fromisoformat(str(data["settlement_date"]))
        currency = str(data["currency"])
        raw = data["records"]
        assert isinstance(raw, list) and len(raw) <= RECORDS_MAX
        records = [SettlementRecord(
            event_token=str(r["event_token"]), transaction_token=str(r["transaction_token"]),
            card_token=str(r["card_token"]), type=str(r["type"]), amount=_int(r["amount"]),
            interchange=_int(r.get("interchange", 0)), network_fee=_int(r.get("network_fee", 0)),
        ) for r in raw]
    except (KeyError, TypeError, ValueError, AssertionError) as error:
        raise SchemaError("settlement file", f"malformed: {error!r}") from None
    if any(r.type not in SETTLED_TYPES for r in records):
        raise SchemaError("records.type", f"one of {SETTLED_TYPES}")
    return day, currency, records


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not an amount of minor units")
    return value


class Reconciler:
    def __init__(self, database_url: str, ledger: AsyncLedgerClient) -> None:
        self._database_url = database_url
        self._ledger = ledger

    async def reconcile(self, data: dict[str, Any]) -> dict[str, Any]:
        day, currency, records = parse_file(data)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        async with await psycopg.AsyncConnection.connect(self._database_url, autocommit=True) as conn:
            ours = {row[0]: row for row in await (await conn.execute(
                Q["settled_events_between"], {"start": start, "end": start + dt.timedelta(days=1)})).fetchall()}
            rows = await (await conn.execute(Q["program_accounts"], {"asset": currency})).fetchall()
            program: dict[str, str] = {str(role): str(account) for role, account in rows}
            differences: list[dict[str, Any]] = []
            proposals: list[dict[str, Any]] = []
            totals = {"file_amount": 0, "ledger_amount": 0, "file_interchange": 0, "file_network_fees": 0}
            for record in records:
                totals["file_amount"] += record.amount
                totals["file_interchange"] += record.interchange
                totals["file_network_fees"] += record.network_fee
                found = ours.pop(record.event_token, None)
                if found is None:  # applied, but the processor dated it another day
                    lookup = {"event_token": record.event_token}
                    found = await (await conn.execute(Q["applied_event"], lookup)).fetchone()
                if found is None:
                    differences.append({"kind": "missing_in_ledger", "event_token": record.event_token,
                                        "amount": record.amount})
                    proposals.append(await self._propose_missing(conn, day, record, program))
                    continue
                booked = await self._booked_amount(found, program)
                totals["ledger_amount"] += booked
                if booked != record.amount:
                    differences.append({"kind": "amount_mismatch", "event_token": record.event_token,
                                        "settled": record.amount, "ledger": booked})
                    proposals.append(await self._propose_difference(conn, day, record, booked, program))
            for event_token, row in ours.items():
                booked = await self._booked_amount(row, program)
                totals["ledger_amount"] += booked
                differences.append({"kind": "missing_in_settlement", "event_token": event_token, "ledger": booked})
                outcome = row[4] or {}
                proposals.append({"for": event_token, "why": "the processor did not settle it: reverse after review",
                                  "operations": [{"reverse": {"transfer_id": t,
                                                              "request_id": f"card-recon:{day}:{event_token}:{i}"}}
                                                 for i, t in enumerate(outcome.get("transfers", []))]})
        return {"settlement_date": day.isoformat(), "currency": currency, "records": len(records),
                "matched": not differences, "differences": differences, "proposals": proposals,
                "totals": totals, "posted": False}

    async def _booked_amount(self, row: Any, program: dict[str, str]) -> int:
        """The event's amount as the ledger holds it: its transfers to or from merchant settlement."""
        settlement = program.get(ProgramRole.MERCHANT_SETTLEMENT.value)
        outcome = row[4] or {}
        total = 0
        for transfer_id in outcome.get("transfers", []):
            try:
                transfer = await self._ledger.get_transfer(transfer_id=transfer_id)
            except LedgerError:
                continue
            if transfer.kind in ("SINGLE_PHASE", "POST_PENDING", "REVERSAL") and settlement in (
                    transfer.credit_account_id, transfer.debit_account_id):
                total += transfer.amount
        return total

    async def _card_account(self, conn: Any, card_token: str) -> str | None:
        row = await (await conn.execute(Q["card_by_token"], {"token": card_token})).fetchone()
        return None if row is None else str(row[2])

    async def _propose_missing(
        self, conn: Any, day: dt.date, record: SettlementRecord, program: dict[str, str]
    ) -> dict[str, Any]:
        account = await self._card_account(conn, record.card_token)
        settlement = program.get(ProgramRole.MERCHANT_SETTLEMENT.value)
        debit, credit = (settlement, account) if record.type == "return" else (account, settlement)
        return {"for": record.event_token, "why": f"settled by the processor, never booked ({record.type})",
                "operations": [{"create_transfer": {
                    "debit_account_id": debit, "credit_account_id": credit, "amount": str(record.amount),
                    "request_id": f"card-recon:{day}:{record.event_token}:0",
                    "metadata": {"card_event": record.event_token, "card_flow": "reconciliation"}}}]}

    async def _propose_difference(
        self, conn: Any, day: dt.date, record: SettlementRecord, booked: int, program: dict[str, str]
    ) -> dict[str, Any]:
        account = await self._card_account(conn, record.card_token)
        settlement = program.get(ProgramRole.MERCHANT_SETTLEMENT.value)
        cardholder_pays = (record.amount > booked) == (record.type != "return")
        debit, credit = (account, settlement) if cardholder_pays else (settlement, account)
        return {"for": record.event_token, "why": f"settled {record.amount}, booked {booked}",
                "operations": [{"create_transfer": {
                    "debit_account_id": debit, "credit_account_id": credit,
                    "amount": str(abs(record.amount - booked)),
                    "request_id": f"card-recon:{day}:{record.event_token}:0",
                    "metadata": {"card_event": record.event_token, "card_flow": "reconciliation"}}}]}


async def run_reconcile(database_url: str, ledger_target: str, api_key: str, path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    async with AsyncLedgerClient(ledger_target, token=api_key) as ledger:
        return await Reconciler(database_url, ledger).reconcile(data)


class ProposalError(ValueError):
    """The report or the selection is not something to post."""


def _operations(proposal: dict[str, Any], currency: str, reviewer: str) -> list[Operation]:
    stamp = {"card_flow": "reconciliation", "reviewed_by": reviewer}
    operations: list[Operation] = []
    for item in proposal.get("operations", []):
        if "create_transfer" in item:
            t = item["create_transfer"]
            amount = int(t["amount"])
            if amount <= 0:
                raise ProposalError(f"proposal for {proposal.get('for')}: amount must be positive")
            operations.append(NewTransfer(
                debit_account_id=t["debit_account_id"], credit_account_id=t["credit_account_id"], amount=amount,
                asset=currency, metadata={**t.get("metadata", {}), **stamp}, request_id=t["request_id"]))
        elif "reverse" in item:
            r = item["reverse"]
            operations.append(Reverse(transfer_id=r["transfer_id"], metadata=stamp, request_id=r["request_id"]))
        else:
            raise ProposalError(f"proposal for {proposal.get('for')}: unknown operation {sorted(item)}")
    if not operations:
        raise ProposalError(f"proposal for {proposal.get('for')} has no operations")
    return operations


async def post_proposals(
    report: dict[str, Any], events: list[str], reviewer: str, ledger: AsyncLedgerClient
) -> list[dict[str, Any]]:
    """Post the named proposals of a reconciliation report, each as one atomic batch."""
    if not reviewer.strip():
        raise ProposalError("a reviewer must be named")
    if report.get("posted") is not False or "proposals" not in report or "currency" not in report:
        raise ProposalError("not a reconciliation report")
    by_event = {p["for"]: p for p in report["proposals"]}
    unknown = [e for e in events if e not in by_event]
    if unknown or not events:
        raise ProposalError(f"no proposal for {unknown}" if unknown else "name at least one proposal")
    results: list[dict[str, Any]] = []
    for event in dict.fromkeys(events):  # each once, in the order given
        operations = _operations(by_event[event], report["currency"], reviewer)
        try:
            batch = await ledger.apply_operations(
                operations=operations, atomic=True, request_id=f"card-recon-post:{report['settlement_date']}:{event}")
        except LedgerError as error:
            results.append({"for": event, "posted": False, "error": error.reason})
            continue
        failed = [item.error.reason for item in batch.results if item.error is not None]
        results.append({"for": event, "posted": not failed,
                        "transfers": [item.transfer.id for item in batch.results if item.transfer is not None],
                        **({"errors": failed} if failed else {})})
    return results


async def run_post_proposals(
    ledger_target: str, api_key: str, path: str, events: list[str], reviewer: str
) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    async with AsyncLedgerClient(ledger_target, token=api_key) as ledger:
        return await post_proposals(report, events, reviewer, ledger)
