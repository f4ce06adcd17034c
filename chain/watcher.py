"""The chain watcher: follows the chain head, records deposits, credits them once confirmed,
handles reorgs. One active watcher per chain (leadership.py); any number of standbys.

One unit of work (`work`) does one of:
  * read the next range of blocks on top of the checkpoint and record blocks, deposits and the new
    checkpoint in one transaction (a parent-hash mismatch means a reorg instead);
  * on a reorg, walk back to the common ancestor comparing stored hashes with the node's, and
    rewind in one transaction (unconfirmed deposits of orphaned blocks: ORPHANED; credited ones:
    REVERSAL_PENDING); the new branch is then read like any other;
then credits the deposits that reached their confirmations (ledger call first, idempotent; then the
CREDITED state) and settles the credited deposits a deep reorg removed (reversal, else a hold, and
an alert either way).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass

import psycopg

from ledger.v1 import ledger_pb2
from ledger_chain import leadership
from ledger_chain.backoff import Backoff
from ledger_chain.deposit_store import (
    CREDITED,
    HELD,
    REVERSED,
    Alert,
    Cursor,
    DepositStore,
    OpenDeposit,
    StaleCheckpointError,
    Watchlist,
)
from ledger_chain.ledger_gateway import LedgerGateway, LedgerRejectedError, LedgerUnavailableError
from ledger_chain.metrics import WatcherMetrics
from ledger_chain.node import EthNode, NodeError, NodeUnavailableError, RangeTooLargeError
from ledger_chain.scanner import ChainMovedError, RangeRead, read_range

log = logging.getLogger(__name__)
RANGE_GROW_AFTER = 8  # successful reads before a shrunk range doubles again


class ConfigurationError(Exception):
    """The watcher cannot run as configured (wrong chain behind the URL): exit, do not retry."""


class ReorgTooDeepError(Exception):
    """The node's chain forks below the oldest block kept: nothing is written until an operator acts."""


@dataclass(frozen=True)
class WatcherConfig:
    chain_id: int
    start_block: int | None = None     # first block to read on the very first start; None: the head then
    poll_interval_s: float = 1.0       # at the tip: how often to look for a new block
    range_max: int = 100               # blocks per read (eth_getLogs range), shrunk when the node refuses
    keep_blocks: int = 512             # block hashes kept behind the checkpoint: the deepest reorg handled
    credit_batch: int = 200            # deposits credited per unit of work
    backoff_max_s: float = 30.0
    standby_poll_s: float = 1.0        # how often a standby tries to take over

    def __post_init__(self) -> None:
        assert self.chain_id > 0 and self.range_max >= 1 and self.keep_blocks >= 16 and self.credit_batch >= 1


def credit_request_id(chain_id: int, tx_hash: str, position: str, generation: int) -> str:
    """The ledger request id of a deposit's credit: the same for every watcher, run and replay."""
    base = f"chain:{chain_id}:{tx_hash}:{position}"
    return base if generation == 0 else f"{base}:credit{generation}"


def reversal_request_id(chain_id: int, tx_hash: str, position: str, generation: int) -> str:
    return f"chain-reorg:{chain_id}:{tx_hash}:{position}:{generation}"


def reorg_hold_request_id(chain_id: int, tx_hash: str, position: str, generation: int) -> str:
    return f"chain-reorg-hold:{chain_id}:{tx_hash}:{position}:{generation}"


class Watcher:
    def __init__(
        self, config: WatcherConfig, node: EthNode, gateway: LedgerGateway, metrics: WatcherMetrics | None = None
    ) -> None:
        self.config = config
        self.node = node
        self.gateway = gateway
        self.metrics = metrics or WatcherMetrics()
        self._span = config.range_max
        self._reads_since_shrink = 0
        self._chain_verified = False
        self.metrics.log_range_blocks.set(self._span)
        self.metrics.node_up.set(1)
        gateway.on_transient = lambda method, code: self.metrics.ledger_errors.labels(code.name).inc()

    # -- the daemon loop --------------------------------------------------------------------------

    def run(self, database_url: str, stop: threading.Event) -> None:
        """Lead (or stand by), work, back off on failures; returns when `stop` is set."""
        backoff = Backoff(base_s=min(0.5, self.config.backoff_max_s), max_s=self.config.backoff_max_s)
        name = f"ledger-chain-watcher:{self.config.chain_id}:{os.getpid()}"  # who leads, in pg_stat_activity
        while not stop.is_set():
            try:
                with leadership.connect(database_url, name) as conn:
                    self._lead(conn, stop, backoff)
            except (psycopg.OperationalError, StaleCheckpointError) as error:
                self.metrics.leader.set(0)
                delay = backoff.next_delay()
                log.warning("database: %s; leadership dropped, retrying in %.1fs", error, delay)
                stop.wait(delay)
        self.metrics.leader.set(0)

    def _lead(self, conn: psycopg.Connection[object], stop: threading.Event, backoff: Backoff) -> None:
        while not leadership.try_lead(conn, leadership.WATCHER_LOCK_CLASS, self.config.chain_id):
            self.metrics.leader.set(0)
            if stop.wait(self.config.standby_poll_s):
                return
        log.info("leading chain %d", self.config.chain_id)
        self.metrics.leader.set(1)
        store = DepositStore(conn, self.config.chain_id)
        while not stop.is_set():
            try:
                more = self.work(store)
            except (NodeUnavailableError, NodeError, LedgerUnavailableError, LedgerRejectedError,
                    ReorgTooDeepError) as error:
                self._back_off(error, backoff, stop)
                continue
            except ChainMovedError as error:
                log.info("chain moved while reading: %s; reading again", error)
                continue
            if backoff.failures:
                log.info("node and ledger answer again; resuming")
            backoff.reset()
            self.metrics.node_up.set(1)
            self.metrics.backoff_seconds.set(0)
            if not more:
                stop.wait(self.config.poll_interval_s)

    def _back_off(self, error: Exception, backoff: Backoff, stop: threading.Event) -> None:
        kind = type(error).__name__
        if isinstance(error, NodeUnavailableError | NodeError):
            self.metrics.node_up.set(0)
            self.metrics.node_errors.labels(kind).inc()
        elif isinstance(error, LedgerUnavailableError):
            self.metrics.ledger_errors.labels("unavailable").inc()
        delay = backoff.next_delay()
        self.metrics.backoff_seconds.set(delay)
        level = logging.ERROR if isinstance(error, ReorgTooDeepError) else logging.WARNING
        log.log(level, "%s: %s; backing off %.1fs (failure %d)", kind, error, delay, backoff.failures)
        stop.wait(delay)

    # -- one unit of work -------------------------------------------------------------------------

    def work(self, store: DepositStore) -> bool:
        """Advance once; True when more work is waiting (no need to sleep)."""
        if not self._chain_verified:
            found = self.node.chain_id()
            if found != self.config.chain_id:
                raise ConfigurationError(f"the node serves chain {found}, not {self.config.chain_id}")
            self._chain_verified = True
        watch = store.watchlist()
        head = self.node.block_number()
        self.metrics.head_block.set(head)
        cursor = store.cursor(self.config.start_block if self.config.start_block is not None else head)
        more = self._follow(store, cursor, head, watch)
        more = self._credit(store) or more
        more = self._settle_reversals(store) or more
        return more

    def _follow(self, store: DepositStore, cursor: Cursor, head: int, watch: Watchlist) -> bool:
        if cursor.number >= head:
            if cursor.hash is not None:
                tip = self.node.header(cursor.number)
                if tip is None or tip.hash != cursor.hash:
                    self._reorg(store, cursor, head)
                    return True
            store.note_head(head)
            self.metrics.checkpoint_block.set(cursor.number)
            return False
        first = cursor.number + 1
        read = self._read(first, min(head, cursor.number + self._span), watch)
        if cursor.hash is not None and read.first_parent_hash != cursor.hash:
            self._reorg(store, cursor, head)
            return True
        states = store.record_range(cursor, read.blocks, read.deposits, head, self.config.keep_blocks)
        for deposit, state in states:
            self.metrics.deposits.labels("seen").inc()
            log.info("deposit %s:%s of %d %s to %s in block %d (state %d)", deposit.tx_hash, deposit.position,
                     deposit.amount, deposit.asset, deposit.address, deposit.block_number, state)
            if state == CREDITED:
                log.info("deposit %s:%s re-included in block %d: its credit stands", deposit.tx_hash,
                         deposit.position, deposit.block_number)
        last = read.blocks[-1].number
        self.metrics.checkpoint_block.set(last)
        return last < head

    def _read(self, first: int, last: int, watch: Watchlist) -> RangeRead:
        """read_range with the range halved while the node refuses it, and grown back slowly."""
        while True:
            try:
                read = read_range(self.node, first, min(last, first + self._span - 1), watch)
            except RangeTooLargeError as error:
                if self._span == 1:
                    raise NodeUnavailableError(f"the node refuses even a one-block log range: {error}") from None
                self._span = max(1, self._span // 2)
                self._reads_since_shrink = 0
                self.metrics.range_shrinks.inc()
                self.metrics.log_range_blocks.set(self._span)
                log.warning("node refused the log range (%s); now %d blocks per range", error, self._span)
                continue
            self._reads_since_shrink += 1
            if self._span < self.config.range_max and self._reads_since_shrink >= RANGE_GROW_AFTER:
                self._span = min(self.config.range_max, self._span * 2)
                self._reads_since_shrink = 0
                self.metrics.log_range_blocks.set(self._span)
            return read

    def _reorg(self, store: DepositStore, cursor: Cursor, head: int) -> None:
        """Walk back to the newest block whose stored hash the node still has; rewind to it."""
        number = min(cursor.number, head)
        while True:
            if number < cursor.start_block:
                ancestor, ancestor_hash = cursor.start_block - 1, None
                break
            stored = store.block_hash(number)
            if stored is None:
                message = (f"chain {self.config.chain_id} forks below block {number}, the oldest kept "
                           f"(checkpoint {cursor.number}); raise --keep-blocks or resolve by hand")
                store.alert(Alert("reorg_too_deep", f"block:{number}", message, {"checkpoint": str(cursor.number)}))
                self.metrics.alerts.labels("reorg_too_deep").inc()
                raise ReorgTooDeepError(message)
            found = self.node.header(number)
            if found is not None and found.hash == stored:
                ancestor, ancestor_hash = number, stored
                break
            number -= 1
        orphaned, credited = store.rewind(ancestor, ancestor_hash)
        depth = cursor.number - ancestor
        self.metrics.reorgs.inc()
        self.metrics.reorg_depth.observe(depth)
        self.metrics.checkpoint_block.set(ancestor)
        self.metrics.deposits.labels("orphaned").inc(orphaned)
        log.warning("reorg on chain %d: %d blocks above %d orphaned; %d unconfirmed deposits forgotten",
                    self.config.chain_id, depth, ancestor, orphaned)
        for tx_hash, position, amount, account in credited:
            log.error("deep reorg: credited deposit %s:%s (%s to account %s) left the chain; it will be "
                      "reversed unless the new branch has it", tx_hash, position, amount, account)

    # -- credits ----------------------------------------------------------------------------------

    def _credit(self, store: DepositStore) -> bool:
        batch = store.confirmed(self.config.credit_batch)
        for deposit in batch:
            request_id = credit_request_id(self.config.chain_id, deposit.tx_hash, deposit.position, deposit.generation)
            request = ledger_pb2.CreateTransferRequest(
                request_id=request_id, debit_account_id=str(deposit.omnibus_account_id),
                credit_account_id=str(deposit.account_id), amount=str(deposit.amount), asset=deposit.asset,
                metadata=self._deposit_metadata(deposit),
            )
            try:
                transfer = self.gateway.create_transfer(request)
            except LedgerRejectedError as error:
                self._reject(store, deposit, request_id, error)
                continue
            if store.mark_credited(deposit, uuid.UUID(transfer.id), request_id):
                self.metrics.deposits.labels("credited").inc()
                log.info("credited deposit %s:%s: %d %s to account %s (transfer %s)", deposit.tx_hash,
                         deposit.position, deposit.amount, deposit.asset, deposit.account_id, transfer.id)
        return len(batch) == self.config.credit_batch

    def _deposit_metadata(self, deposit: OpenDeposit) -> dict[str, str]:
        """Only what identifies the deposit: identical on every replay, whatever block holds it."""
        return {"source": "chain_deposit", "chain_id": str(self.config.chain_id), "tx_hash": deposit.tx_hash,
                "position": deposit.position}

    def _reject(self, store: DepositStore, deposit: OpenDeposit, request_id: str, error: LedgerRejectedError) -> None:
        subject = f"deposit:{deposit.tx_hash}:{deposit.position}"
        message = f"the ledger refused the credit of {subject}: {error}"
        log.error("ALERT credit_rejected: %s", message)
        store.mark_rejected(deposit, request_id, Alert("credit_rejected", subject, message, {
            "request_id": request_id, "reason": error.reason, "amount": str(deposit.amount),
            "account_id": str(deposit.account_id),
        }))
        self.metrics.deposits.labels("rejected").inc()
        self.metrics.alerts.labels("credit_rejected").inc()

    # -- deep reorgs ------------------------------------------------------------------------------

    def _settle_reversals(self, store: DepositStore) -> bool:
        due = store.reversals_due(self.config.credit_batch)
        for deposit in due:
            assert deposit.credit_transfer_id is not None
            request_id = reversal_request_id(self.config.chain_id, deposit.tx_hash, deposit.position,
                                             deposit.generation)
            subject = f"deposit:{deposit.tx_hash}:{deposit.position}"
            try:
                reversal = self.gateway.reverse_transfer(ledger_pb2.ReverseTransferRequest(
                    request_id=request_id, transfer_id=str(deposit.credit_transfer_id),
                    metadata={**self._deposit_metadata(deposit), "source": "chain_reorg"},
                ))
            except LedgerRejectedError as error:
                self._hold_instead(store, deposit, subject, error)
                continue
            message = (f"a reorg deeper than the confirmations removed credited {subject}; "
                       f"the credit {deposit.credit_transfer_id} was reversed by {reversal.id}")
            log.error("ALERT deep_reorg_reversal: %s", message)
            store.mark_reversed(deposit, REVERSED, uuid.UUID(reversal.id), Alert(
                "deep_reorg_reversal", subject, message, {
                    "amount": str(deposit.amount), "account_id": str(deposit.account_id),
                    "credit_transfer_id": str(deposit.credit_transfer_id), "reversal_transfer_id": reversal.id,
                }))
            self.metrics.deposits.labels("reversed").inc()
            self.metrics.alerts.labels("deep_reorg_reversal").inc()
        return len(due) == self.config.credit_batch

    def _hold_instead(
        self, store: DepositStore, deposit: OpenDeposit, subject: str, error: LedgerRejectedError
    ) -> None:
        """The account no longer covers the reversal: hold what it still has, alert for the rest."""
        account = self.gateway.account(str(deposit.account_id))
        available = int(account.credits_posted) - int(account.debits_posted) - int(account.debits_pending)
        held = max(0, min(available, deposit.amount))
        hold_id: uuid.UUID | None = None
        if held > 0:
            request_id = reorg_hold_request_id(self.config.chain_id, deposit.tx_hash, deposit.position,
                                               deposit.generation)
            request = ledger_pb2.CreateTransferRequest(
                request_id=request_id, debit_account_id=str(deposit.account_id),
                credit_account_id=str(deposit.omnibus_account_id), amount=str(held), asset=deposit.asset,
                pending=True, metadata={**self._deposit_metadata(deposit), "source": "chain_reorg_hold"},
            )
            try:
                hold_id = uuid.UUID(self.gateway.create_transfer(request).id)
            except LedgerRejectedError:
                # The balance moved since it was read, or an earlier attempt (another amount) used the id.
                hold_id, held = self._earlier_hold(request_id)
        message = (f"a reorg deeper than the confirmations removed credited {subject}; the reversal was refused "
                   f"({error.reason}): {held} held on account {deposit.account_id}, "
                   f"{deposit.amount - held} not covered")
        log.error("ALERT deep_reorg_hold: %s", message)
        store.mark_reversed(deposit, HELD, hold_id, Alert("deep_reorg_hold", subject, message, {
            "amount": str(deposit.amount), "held": str(held), "shortfall": str(deposit.amount - held),
            "account_id": str(deposit.account_id), "hold_transfer_id": str(hold_id) if hold_id else "",
            "reason": error.reason,
        }))
        self.metrics.deposits.labels("held").inc()
        self.metrics.alerts.labels("deep_reorg_hold").inc()

    def _earlier_hold(self, request_id: str) -> tuple[uuid.UUID | None, int]:
        try:
            hold = self.gateway.transfer_by_request_id(request_id)
        except LedgerRejectedError:
            return None, 0
        return uuid.UUID(hold.id), int(hold.amount)
