"""The withdrawal signer: sends HELD withdrawals from the hot wallet and settles their holds.

Per withdrawal: HELD -> (nonce taken, transaction signed and stored) SIGNED -> (node accepted it)
SENT -> (a receipt) MINED -> (N confirmations) POSTED, the hold posted; or FAILED, the hold voided:
when the call would revert (nothing sent, no nonce used), when it reverted on chain, when it was
dropped and its nonce filled by a cancellation, or when another transaction used its nonce.

While SENT it is watched: re-broadcast when the node forgot it, fee bumped (same nonce, +12.5% on
both fees, capped) when unmined for `stuck_after_s`, cancelled (zero value to self, same nonce)
when the node keeps refusing it for `drop_after_s`. Ledger calls use request ids derived from the
withdrawal id, so a restart at any point replays instead of writing twice. One active signer per
chain (leadership.py).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from ledger.v1 import ledger_pb2
from ledger_chain import leadership
from ledger_chain.backoff import Backoff
from ledger_chain.ledger_gateway import LedgerGateway, LedgerRejectedError, LedgerUnavailableError
from ledger_chain.metrics import SignerMetrics
from ledger_chain.node import EthNode, NodeError, NodeUnavailableError, Receipt, SendOutcome
from ledger_chain.withdrawal_store import (
    FAILED,
    HELD,
    MINED,
    POSTED,
    REJECTED,
    REQUESTED,
    SENT,
    SIGNED,
    STATE_NAMES,
    Attempt,
    OpenWithdrawal,
    SignedTx,
    WithdrawalStore,
)
from ledger_server.withdrawal_requests import hold_metadata, hold_request_id

log = logging.getLogger(__name__)
GWEI = 10**9
TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
NATIVE_GAS = 21_000


class ConfigurationError(Exception):
    """Wrong chain behind the URL: exit, do not retry."""


@dataclass(frozen=True)
class SignerConfig:
    chain_id: int
    poll_interval_s: float = 1.0
    stuck_after_s: float = 30.0        # newest attempt unmined this long: replace it with a higher fee
    drop_after_s: float = 120.0        # the node refuses to take it back this long: cancel (fill the nonce)
    max_fee_per_gas_cap: int = 500 * GWEI
    abandoned_after_s: float = 30.0    # a REQUESTED withdrawal its caller left: the signer finishes it
    batch: int = 50
    backoff_max_s: float = 30.0
    standby_poll_s: float = 1.0

    def __post_init__(self) -> None:
        assert self.chain_id > 0 and self.batch >= 1 and self.max_fee_per_gas_cap > 0


def _bumped(value: int) -> int:
    """+12.5%, rounded up: above the 10% a node requires of a replacement."""
    return value + (value + 7) // 8 + 1


def _transfer_data(to_address: str, amount: int) -> str:
    return "0x" + TRANSFER_SELECTOR + to_address[2:].rjust(64, "0") + format(amount, "064x")


class Signer:
    def __init__(
        self, config: SignerConfig, node: EthNode, gateway: LedgerGateway, wallet: LocalAccount,
        metrics: SignerMetrics | None = None,
    ) -> None:
        self.config = config
        self.node = node
        self.gateway = gateway
        self.wallet = wallet
        self.address = wallet.address.lower()
        self.metrics = metrics or SignerMetrics()
        self._ready = False
        self._alerted: set[tuple[str, str]] = set()

    # -- the daemon loop --------------------------------------------------------------------------

    def run(self, database_url: str, stop: threading.Event) -> None:
        backoff = Backoff(base_s=min(0.5, self.config.backoff_max_s), max_s=self.config.backoff_max_s)
        name = f"ledger-chain-signer:{self.config.chain_id}:{os.getpid()}"
        while not stop.is_set():
            try:
                with leadership.connect(database_url, name) as conn:
                    self._lead(conn, stop, backoff)
            except psycopg.OperationalError as error:
                self.metrics.leader.set(0)
                delay = backoff.next_delay()
                log.warning("database: %s; retrying in %.1fs", error, delay)
                stop.wait(delay)
        self.metrics.leader.set(0)

    def _lead(self, conn: psycopg.Connection[Any], stop: threading.Event, backoff: Backoff) -> None:
        while not leadership.try_lead(conn, leadership.SIGNER_LOCK_CLASS, self.config.chain_id):
            self.metrics.leader.set(0)
            if stop.wait(self.config.standby_poll_s):
                return
        log.info("signing for chain %d from %s", self.config.chain_id, self.address)
        self.metrics.leader.set(1)
        self._ready = False
        store = WithdrawalStore(conn, self.config.chain_id)
        while not stop.is_set():
            try:
                more = self.work(store)
            except (NodeUnavailableError, NodeError, LedgerUnavailableError, LedgerRejectedError) as error:
                if isinstance(error, NodeUnavailableError | NodeError):
                    self.metrics.node_up.set(0)
                self.metrics.node_errors.labels(type(error).__name__).inc()
                delay = backoff.next_delay()
                log.warning("%s: %s; backing off %.1fs", type(error).__name__, error, delay)
                stop.wait(delay)
                continue
            backoff.reset()
            self.metrics.node_up.set(1)
            if not more:
                stop.wait(self.config.poll_interval_s)

    # -- one unit of work -------------------------------------------------------------------------

    def work(self, store: WithdrawalStore) -> bool:
        """Advance every open withdrawal once; True when more are waiting."""
        if not self._ready:
            self._start(store)
        more = self._finish_abandoned(store)
        more = self._sign_held(store) or more
        self._track(store)
        return more

    def _start(self, store: WithdrawalStore) -> None:
        found = self.node.chain_id()
        if found != self.config.chain_id:
            raise ConfigurationError(f"the node serves chain {found}, not {self.config.chain_id}")
        latest = self.node.nonce(self.address, "latest")
        pending = self.node.nonce(self.address, "pending")
        nonce, before = store.ensure_nonce(self.address, pending, latest)
        if latest > before:
            self._alert(store, "nonce_used_elsewhere", f"wallet:{self.address}",
                        f"the node counts {latest} transactions of the hot wallet; the signer had given {before}: "
                        "the key is used outside the signer", {"node_nonce": str(latest), "signer_nonce": str(before)})
        self.metrics.next_nonce.set(nonce)
        self._ready = True

    def _finish_abandoned(self, store: WithdrawalStore) -> bool:
        """REQUESTED rows whose CreateWithdrawal call died before the hold was recorded."""
        rows = store.withdrawals([REQUESTED], self.config.batch, idle_s=self.config.abandoned_after_s)
        for w in rows:
            request = ledger_pb2.CreateTransferRequest(
                request_id=hold_request_id(w.id), debit_account_id=str(w.account_id),
                credit_account_id=str(w.omnibus_account_id), amount=str(w.amount), asset=w.asset, pending=True,
                metadata=hold_metadata(w.id, self.config.chain_id, w.to_address),
            )
            try:
                hold = self.gateway.create_transfer(request)
            except LedgerRejectedError as error:
                store.requested_settled(w.id, REJECTED, None, str(error))
                self._count(REJECTED)
                continue
            store.requested_settled(w.id, HELD, uuid.UUID(hold.id), "")
        return len(rows) == self.config.batch

    # -- sending ----------------------------------------------------------------------------------

    def _sign_held(self, store: WithdrawalStore) -> bool:
        rows = store.withdrawals([HELD], self.config.batch)
        for w in rows:
            try:
                call = self._call(w)
            except NodeError as error:
                self._void(store, w, f"the transaction would fail: {error}")
                continue
            max_fee, priority_fee = self._fees()
            if not self._affordable(store, w, call, max_fee):
                continue
            signed = store.sign_first_attempt(
                w, self.address,
                lambda nonce, call=call, fee=max_fee, tip=priority_fee: self._sign(call, nonce, fee, tip),  # type: ignore[misc]
            )
            if signed is None:
                continue
            nonce, tx = signed
            self.metrics.next_nonce.set(nonce + 1)
            self._count(SIGNED)
            log.info("withdrawal %s: nonce %d, transaction %s", w.id, nonce, tx.tx_hash)
            attempt = store.attempts(w.id)[-1]
            self._broadcast(store, w.id, SIGNED, attempt)
        return len(rows) == self.config.batch

    def _call(self, w: OpenWithdrawal) -> dict[str, Any]:
        """The transaction without nonce and fees; NodeError if the node says it would revert."""
        if w.contract_address:
            data = _transfer_data(w.to_address, w.amount)
            call: dict[str, Any] = {"to": w.contract_address, "value": 0, "data": data}
        else:
            call = {"to": w.to_address, "value": w.amount, "data": "0x"}
        estimate = self.node.estimate_gas({"from": self.address, "to": call["to"], "value": hex(call["value"]),
                                           "data": call["data"]})
        call["gas"] = NATIVE_GAS if estimate <= NATIVE_GAS and not w.contract_address else estimate * 6 // 5
        return call

    def _fees(self) -> tuple[int, int]:
        base = self.node.latest_header().base_fee_per_gas
        priority = min(self.node.max_priority_fee(), self.config.max_fee_per_gas_cap)
        return min(self.config.max_fee_per_gas_cap, 2 * base + priority), priority

    def _affordable(self, store: WithdrawalStore, w: OpenWithdrawal, call: dict[str, Any], max_fee: int) -> bool:
        """Whether the hot wallet can pay the value and the worst-case gas; else wait, and alert once."""
        needed = int(call["value"]) + int(call["gas"]) * max_fee
        balance = self.node.balance(self.address)
        if balance >= needed:
            return True
        self._alert(store, "hot_wallet_underfunded", f"withdrawal:{w.id}",
                    f"the hot wallet {self.address} holds {balance} wei, withdrawal {w.id} needs {needed}",
                    {"balance": str(balance), "needed": str(needed)})
        return False

    def _sign(self, call: dict[str, Any], nonce: int, max_fee: int, priority_fee: int) -> SignedTx:
        tx = {
            "type": 2, "chainId": self.config.chain_id, "nonce": nonce, "to": _checksum(call["to"]),
            "value": int(call["value"]), "data": call["data"], "gas": int(call["gas"]),
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": min(priority_fee, max_fee),
        }
        signed = self.wallet.sign_transaction(tx)
        return SignedTx("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), max_fee,
                        min(priority_fee, max_fee))

    def _broadcast(self, store: WithdrawalStore, withdrawal_id: uuid.UUID, state: int, attempt: Attempt) -> SendOutcome:
        outcome, message = self.node.send_raw(attempt.raw_tx)
        self.metrics.broadcasts.labels(outcome.value).inc()
        if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN, SendOutcome.NONCE_TOO_LOW):
            store.broadcast_done(withdrawal_id, attempt.attempt)
            if state == SIGNED and store.move(withdrawal_id, SIGNED, SENT):
                self._count(SENT)
        else:
            log.warning("withdrawal %s: the node refused %s: %s", withdrawal_id, attempt.tx_hash, message)
        return outcome

    # -- watching what was sent -------------------------------------------------------------------

    def _track(self, store: WithdrawalStore) -> None:
        for w in store.withdrawals([SIGNED, SENT, MINED], self.config.batch):
            attempts = store.attempts(w.id)
            assert attempts, f"withdrawal {w.id} is past HELD without a signed transaction"
            if w.state == SIGNED:
                self._broadcast(store, w.id, SIGNED, attempts[-1])
            elif w.state == SENT:
                self._check_sent(store, w, attempts)
            else:
                self._check_mined(store, w, attempts)

    def _mined(self, attempts: list[Attempt]) -> tuple[Attempt, Receipt] | None:
        receipts = self.node.receipts([a.tx_hash for a in attempts])
        for attempt, receipt in zip(attempts, receipts, strict=True):
            if receipt is not None:
                return attempt, receipt
        return None

    def _check_sent(self, store: WithdrawalStore, w: OpenWithdrawal, attempts: list[Attempt]) -> None:
        assert w.nonce is not None
        used = self.node.nonce(self.address, "latest") > w.nonce  # read before the receipts (no race)
        mined = self._mined(attempts)
        if mined is not None:
            attempt, receipt = mined
            if store.move(w.id, SENT, MINED, tx_hash=attempt.tx_hash, block_number=receipt.block_number,
                          block_hash=receipt.block_hash, confirmations=1):
                self._count(MINED)
            return
        if used:
            self._void(store, w, f"nonce {w.nonce} was used by a transaction the signer did not send", alert=(
                "nonce_conflict", f"the hot wallet's nonce {w.nonce} was used outside the signer; withdrawal "
                f"{w.id} was not sent"))
            return
        last = attempts[-1]
        if not last.broadcast or not self.node.transaction_known(last.tx_hash):
            outcome = self._broadcast(store, w.id, SENT, last)
            refused = outcome not in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN, SendOutcome.NONCE_TOO_LOW)
            if refused and last.kind == "transfer" and last.age_s >= self.config.drop_after_s:
                self._replace(store, w, last, "cancel")
            return
        if last.age_s >= self.config.stuck_after_s:
            self._replace(store, w, last, last.kind)

    def _replace(self, store: WithdrawalStore, w: OpenWithdrawal, last: Attempt, kind: str) -> None:
        """Same nonce, higher fees: a fee bump, or a cancellation (zero value to the wallet itself)."""
        _, suggested_priority = self._fees()
        base = self.node.latest_header().base_fee_per_gas
        priority = max(_bumped(last.max_priority_fee_per_gas), suggested_priority)
        max_fee = min(self.config.max_fee_per_gas_cap, max(_bumped(last.max_fee_per_gas), 2 * base + priority))
        if max_fee < _bumped(last.max_fee_per_gas) - 1 and kind == last.kind:
            log.warning("withdrawal %s: fee cap reached; re-broadcasting %s", w.id, last.tx_hash)
            self._broadcast(store, w.id, SENT, last)
            return
        assert w.nonce is not None
        if kind == "cancel":
            call: dict[str, Any] = {"to": self.address, "value": 0, "data": "0x", "gas": NATIVE_GAS}
        else:
            previous = self._decode_call(last)
            call = previous
        signed = self._sign(call, w.nonce, max_fee, min(priority, max_fee))
        store.add_attempt(w.id, last.attempt + 1, kind, w.nonce, signed)
        self.metrics.fee_bumps.inc()
        log.warning("withdrawal %s: %s with nonce %d at max fee %d (was %d): %s", w.id,
                    "cancelling" if kind == "cancel" else "fee bump", w.nonce, max_fee, last.max_fee_per_gas,
                    signed.tx_hash)
        self._broadcast(store, w.id, SENT, store.attempts(w.id)[-1])

    @staticmethod
    def _decode_call(attempt: Attempt) -> dict[str, Any]:
        """The call of a stored signed transaction (to re-sign it with other fees)."""
        fields = TypedTransaction.from_bytes(HexBytes(attempt.raw_tx)).as_dict()
        return {"to": "0x" + bytes(fields["to"]).hex(), "value": int(fields["value"]),
                "data": "0x" + bytes(fields["data"]).hex(), "gas": int(fields["gas"])}

    def _check_mined(self, store: WithdrawalStore, w: OpenWithdrawal, attempts: list[Attempt]) -> None:
        mined = self._mined(attempts)
        if mined is None:  # a reorg took it out of the chain: it is pending again
            log.warning("withdrawal %s: its transaction left the chain (reorg); watching it again", w.id)
            store.move(w.id, MINED, SENT)
            return
        attempt, receipt = mined
        confirmations = self.node.block_number() - receipt.block_number + 1
        if receipt.block_number != w.mined_block_number or attempt.tx_hash != w.tx_hash:
            store.move(w.id, MINED, MINED, tx_hash=attempt.tx_hash, block_number=receipt.block_number,
                       block_hash=receipt.block_hash, confirmations=max(0, confirmations))
        if confirmations < w.confirmations_required:
            store.touch(w.id, confirmations)
            return
        if attempt.kind == "cancel":
            self._void(store, w, f"dropped: the node refused it; nonce {w.nonce} was filled by {attempt.tx_hash}")
        elif receipt.status != 1:
            self._void(store, w, f"reverted on chain in {attempt.tx_hash}")
        else:
            self._post(store, w, confirmations)

    # -- settling the hold ------------------------------------------------------------------------

    def _post(self, store: WithdrawalStore, w: OpenWithdrawal, confirmations: int) -> None:
        assert w.hold_id is not None
        try:
            posted = self.gateway.post_pending(ledger_pb2.PostPendingTransferRequest(
                request_id=f"withdrawal-post:{w.id}", pending_id=str(w.hold_id),
            ))
        except LedgerRejectedError as error:
            self._settlement_refused(store, w, error)
            return
        store.touch(w.id, confirmations)
        store.settle(w.id, POSTED, uuid.UUID(posted.id))
        self._count(POSTED)
        log.info("withdrawal %s posted after %d confirmations", w.id, confirmations)

    def _void(
        self, store: WithdrawalStore, w: OpenWithdrawal, reason: str, alert: tuple[str, str] | None = None
    ) -> None:
        assert w.hold_id is not None
        try:
            voided = self.gateway.void_pending(ledger_pb2.VoidPendingTransferRequest(
                request_id=f"withdrawal-void:{w.id}", pending_id=str(w.hold_id),
            ))
        except LedgerRejectedError as error:
            self._settlement_refused(store, w, error)
            return
        details = {"withdrawal_id": str(w.id), "nonce": str(w.nonce)}
        store.settle(w.id, FAILED, uuid.UUID(voided.id), reason,
                     alert=None if alert is None else (alert[0], f"withdrawal:{w.id}", alert[1], details))
        if alert is not None:
            self.metrics.alerts.labels(alert[0]).inc()
            log.error("ALERT %s: %s", alert[0], alert[1])
        self._count(FAILED)
        log.warning("withdrawal %s failed, hold voided: %s", w.id, reason)

    def _settlement_refused(self, store: WithdrawalStore, w: OpenWithdrawal, error: LedgerRejectedError) -> None:
        self._alert(store, "withdrawal_settlement_refused", f"withdrawal:{w.id}",
                    f"the ledger refused to settle the hold of withdrawal {w.id}: {error}", {"reason": error.reason})
        raise LedgerUnavailableError(str(error))

    def _alert(self, store: WithdrawalStore, kind: str, subject: str, message: str, details: dict[str, str]) -> None:
        """Raised once per subject and kind per run (the condition is re-checked every loop)."""
        if (kind, subject) in self._alerted:
            return
        self._alerted.add((kind, subject))
        store.alert(kind, subject, message, details)
        self.metrics.alerts.labels(kind).inc()
        log.error("ALERT %s: %s", kind, message)

    def _count(self, state: int) -> None:
        self.metrics.withdrawals.labels(STATE_NAMES[state]).inc()


def _checksum(address: str) -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(address))
