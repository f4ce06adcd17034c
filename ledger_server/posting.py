"""The posting engine: applies a list of jobs in ONE PostgreSQL transaction, each with its own result.

One transaction per batch (a single request is a batch of one):
  1. read stored outcomes of the batch's request ids and the transfers it refers to (immutable);
  2. take advisory locks on every account touched, in ascending key order (no deadlocks), waiting
     for another writer (a replica) that holds one;
  3. read those accounts, the holds and reversal totals, and the assets, set-based;
  4. apply the jobs in arrival order in memory (state_machine.BatchState);
  5. write transfers, entries, holds, one update per account, the request outcomes and the outbox
     events in one statement, in a SERIALIZABLE transaction; COMMIT, then release the locks (BEGIN,
     the write, COMMIT and the unlock in one pipeline).
The warm path: a batch of plain transfers (CreateTransfer, or CreateTransfers of them) between
accounts this writer has committed before skips steps 1-3. It takes the accounts from the writer's
memory (account_cache.py), sends BEGIN and the locks at once (PostgreSQL takes them while the batch
is applied), and the write's guard checks that every remembered row is still current: one round trip
instead of two. Anything unexpected (a row another writer moved, a request id already stored) fails
the write, the engine forgets those accounts and runs the batch again on the read path.
Steps 1-3 are READ COMMITTED statements in one pipeline, outside the write transaction: the locks,
held from before the first read until after the commit, are what makes those reads current, and
the write statement's guard (ledger_write_guard) proves it, failing the batch if any account or
hold changed since it was read. Reading inside the SERIALIZABLE transaction added nothing to that
but predicate locks, which made two replicas abort each other's batches (benchmarks/README.md).
Serialization failures, concurrent duplicate request ids and lost connections are retried with
jittered backoff (safe: outcomes are keyed by request id, so a commit whose acknowledgement was
lost replays); a batch that keeps failing is split so one bad job cannot starve its neighbours.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from psycopg import errors as pg_errors

from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server import queries, rows, wire
from ledger_server.account_cache import AccountCache
from ledger_server.errors import LedgerError, idempotency_key_reused, transient
from ledger_server.ids import account_lock_key, new_uuid7, uuid_text
from ledger_server.metrics import Metrics
from ledger_server.pipeline import SYNC, Pipeline, Statement, statement
from ledger_server.state_machine import BatchState, HoldState, TransferRecord

log = logging.getLogger(__name__)
Q = queries.load("posting")
# The statements of a batch, sent in round trips of their own (ledger_server/pipeline.py).
S = {name: statement(name, Q[name]) for name in (
    "load_outcomes", "load_referenced_transfers", "lock_accounts", "load_accounts", "load_holds",
    "load_reversed_totals", "load_assets", "begin_batch", "insert_assets", "insert_accounts", "write_effects",
    "commit", "unlock_all")}
Call = tuple[Statement, dict[str, Any]] | None

ATTEMPTS_BEFORE_SPLIT = 4
ATTEMPTS_MAX = 10
BACKOFF_BASE_S = 0.002
BACKOFF_MAX_S = 0.5
CONNECTION_RETRY_WINDOW_S = 15.0
SLOW_BATCH_S = 0.1  # a batch slower than this is logged with where its time went (at most once a second)
# A warm batch's timestamp is this process's clock plus the database clock's offset, measured by the
# last read-path batch; one batch at least this often takes the read path to measure it again.
CLOCK_REFRESH_S = 1.0
# Where other writers (replicas) keep moving this writer's accounts, most warm attempts would roll
# back and run again: the share that did, as a moving average over warm attempts, pauses the warm
# path above WARM_FALLBACK_RATE_MAX, and only every WARM_PROBE_EVERY-th eligible batch tries it
# until the share falls again.
WARM_FALLBACK_RATE_MAX = 0.25
WARM_RATE_WEIGHT = 0.05
WARM_PROBE_EVERY = 32
_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Outcome:
    """A job's result: grpc code 0 with the serialized response, or a code with a ledger.v1.Error."""

    code: int
    payload: bytes
    replayed: bool = False

    @classmethod
    def of_error(cls, error: LedgerError) -> Outcome:
        return cls(error.code.value[0], error.to_proto().SerializeToString())

    def error(self) -> LedgerError:
        assert self.code != 0
        return LedgerError.from_proto(ledger_pb2.Error.FromString(self.payload))


@dataclass(frozen=True)
class StoredOutcome:
    operation: str
    request_hash: bytes
    outcome: Outcome
    caller: str = "system"


class RetryableBatchError(Exception):
    """The transaction must be rolled back and run again; nothing of it was committed. `warm`: the
    attempt took the warm path (its accounts are forgotten, so the next one reads them)."""

    def __init__(self, cause: str, warm: bool) -> None:
        super().__init__(cause)
        self.warm = warm


class PostingEngine:
    """Owns one connection; used by one thread (the group committer) at a time."""

    def __init__(
        self, conninfo: str, metrics: Metrics, new_id: Callable[[], uuid.UUID] = new_uuid7, warm_path: bool = True,
    ) -> None:
        self._conninfo = conninfo
        self._metrics = metrics
        self._new_id = new_id
        self._conn: psycopg.Connection[Any] | None = None
        self._pipeline: Pipeline | None = None
        self._slow_logged_at = 0.0
        # Assets never change once created: their scales are cached after a commit that read or
        # created them, so a batch does not load them again.
        self._assets: dict[str, int] = {}
        # Account rows as of this writer's commits: the warm path (module docstring). False: every
        # batch reads its rows (`ledger-server --no-warm-path`; `python -m benchmarks.engine --paths
        # both` compares the two).
        self.warm_path = warm_path
        self._accounts = AccountCache()
        self._clock_offset: dt.timedelta | None = None  # database clock - this process's clock
        self._clock_read_at = 0.0  # time.monotonic() of that measure
        self._last_now = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._warm_fallback_rate = 0.0
        self._warm_skipped = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- retries and splitting --------------------------------------------------------------------

    def execute(self, jobs: Sequence[c.Job]) -> list[Outcome]:
        """Apply jobs in one transaction; every job gets an outcome, in order."""
        assert jobs, "empty batch"
        deadline = time.monotonic() + CONNECTION_RETRY_WINDOW_S
        attempts = ATTEMPTS_BEFORE_SPLIT if len(jobs) > 1 else ATTEMPTS_MAX
        attempt = connection_failures = 0
        while attempt < attempts:
            try:
                return self._run_once(jobs)
            except RetryableBatchError as error:
                self._metrics.batch_retries.labels(cause=str(error)).inc()
                if error.warm:
                    # A remembered row was not current (or a request id was stored already): the
                    # accounts are forgotten, so the next attempt reads them, at once.
                    self._metrics.warm_fallbacks.inc()
                    self._warm_fallback_rate += WARM_RATE_WEIGHT * (1.0 - self._warm_fallback_rate)
                    continue
                attempt += 1
                _sleep_backoff(attempt)
            except psycopg.OperationalError as error:
                # Connection lost (or the server shutting down). The server may have committed before
                # the connection died: the retry finds the stored outcomes and replays them.
                self._metrics.batch_retries.labels(cause="connection").inc()
                log.warning("database connection lost: %s", error)
                self.close()
                if time.monotonic() > deadline:
                    return [Outcome.of_error(_unavailable())] * len(jobs)
                connection_failures += 1
                time.sleep(min(1.0, 0.02 * 2 ** min(connection_failures, 6)))
            except LedgerError:
                raise
            except Exception:
                # A bug, never a business outcome: isolate the job that triggers it, fail only that one.
                log.exception("posting a batch of %d jobs failed", len(jobs))
                self.close()
                if len(jobs) == 1:
                    internal = transient(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; nothing was written")
                    return [Outcome.of_error(internal)]
                break
        if len(jobs) > 1:
            self._metrics.batch_splits.inc()
            middle = len(jobs) // 2
            return self.execute(jobs[:middle]) + self.execute(jobs[middle:])
        exhausted = transient(
            grpc.StatusCode.ABORTED, "SERIALIZATION_RETRIES_EXHAUSTED", "too much contention; retry the request"
        )
        return [Outcome.of_error(exhausted)]

    def _connection(self) -> psycopg.Connection[Any]:
        """Autocommit: the reads run as single READ COMMITTED statements, and the write transaction
        is opened and closed by the batch itself (begin_batch, commit and unlock_all)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute("SET statement_timeout = '10s'")
            self._conn.execute("SET lock_timeout = '5s'")
            # Every statement of the writer looks rows up by key. On a small or not yet analyzed
            # table the planner prefers a sequential scan, which under SERIALIZABLE takes a
            # predicate lock on the whole table, and two replicas' batches then abort each other.
            self._conn.execute("SET enable_seqscan = off")
            # With no sequential scans, a generic plan of a key lookup is the right one whatever the
            # table's statistics; the stored-outcome lookup was otherwise re-planned on every batch
            # (measured: a one-transfer batch 2.4-2.6 -> 2.2 ms, benchmarks/README.md).
            self._conn.execute("SET plan_cache_mode = force_generic_plan")
            self._pipeline = Pipeline(self._conn)
        return self._conn

    def _run_once(self, jobs: Sequence[c.Job]) -> list[Outcome]:
        """One attempt, in two round trips (see _apply; measured against three and four in
        benchmarks/README.md, "Fixes made")."""
        conn = self._connection()
        started = time.perf_counter()
        begin_first = any(isinstance(job, c.SideEffect) for job in jobs)
        warm = None if begin_first else self._warm_state(jobs)
        try:
            try:
                outcomes, state = self._apply(conn, jobs, begin_first, warm)
            except BaseException:
                _abandon(conn)
                self._accounts.forget(_accounts_named(jobs))
                raise
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as error:
            cause = "stale_read" if "stale write" in str(error) else "serialization"
            raise RetryableBatchError(cause, warm is not None) from error
        except pg_errors.UniqueViolation as error:
            raise RetryableBatchError("concurrent_duplicate", warm is not None) from error
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as error:
            raise RetryableBatchError("timeout", warm is not None) from error
        self._assets.update(state.assets)  # committed: safe to remember
        self._accounts.remember(state.accounts.values())
        if warm is not None:
            self._warm_fallback_rate *= 1.0 - WARM_RATE_WEIGHT
        self._metrics.batch_path.labels(path="read" if warm is None else "warm").inc()
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_jobs.observe(len(jobs))
        return outcomes

    # -- one transaction --------------------------------------------------------------------------

    def _apply(
        self, conn: psycopg.Connection[Any], jobs: Sequence[c.Job], begin_first: bool,
        warm: tuple[BatchState, list[int]] | None,
    ) -> tuple[list[Outcome], BatchState]:
        """Every job's outcome, and the batch's state (its assets and accounts are remembered once
        it commits). `begin_first`: the batch has side effects; `warm`: its state and lock keys from
        the writer's memory (_warm_state), or None to read them.

        Two round trips: the reads, then BEGIN, the write, COMMIT and the unlock. A batch with side
        effects (jobs that write while they are applied) opens its transaction at the end of the
        reads' round trip instead. A warm batch has one: BEGIN and its locks are sent before it is
        applied, the write, COMMIT and the unlock after."""
        assert self._pipeline is not None
        started = time.perf_counter()
        if warm is None:
            state, loaded_versions = self._read(self._pipeline, jobs, begin_first)
        else:
            state, keys = warm
            loaded_versions = {a.id: a.version for a in state.accounts.values()}
            # The transaction's snapshot is taken by this first statement, before the locks are
            # granted: a row another writer commits while this one waits fails the write (a
            # serialization failure) instead of being overwritten.
            self._pipeline.send([(S["begin_batch"], {}), (S["lock_accounts"], {"keys": _array_literal(keys)})])
        read = time.perf_counter()
        # Rows of a large batch go to PostgreSQL in parts while the rest is applied. Not with side
        # effects (their statements run while applying) nor new assets or accounts (rows after them
        # refer to them, and they are inserted first, by the last part).
        streamed = not begin_first and not any(isinstance(job, c.CreateAsset | c.CreateAccount) for job in jobs)
        rows = _RowStream(state, self._pipeline, streamed, begun=warm is not None)
        try:
            results = []
            for job in jobs:
                results.append(_apply_job(state, job, conn, rows.between_jobs))
                rows.between_jobs()
            calls: list[Call] = [] if begin_first or rows.begun else [(S["begin_batch"], {})]
            calls += _write(state, loaded_versions, rows.sent, check_unchanged=warm is not None)
            calls += [(S["commit"], {}), (S["unlock_all"], {})]
        except BaseException:
            self._pipeline.discard()
            raise
        applied = time.perf_counter()
        self._pipeline.run(calls)
        self._log_if_slow(len(jobs), started, read, applied, time.perf_counter())
        return results, state

    def _warm_state(self, jobs: Sequence[c.Job]) -> tuple[BatchState, list[int]] | None:
        """The batch's state from the writer's memory, and its lock keys; None unless every job is a
        plain transfer (or a batch of them) between remembered accounts of a known asset."""
        if not self.warm_path or self._clock_offset is None \
                or time.monotonic() - self._clock_read_at > CLOCK_REFRESH_S:
            return None
        account_ids: set[uuid.UUID] = set()
        assets: dict[str, int] = {}
        for cmd in _commands(jobs):
            if type(cmd) is not c.CreateTransfer:
                return None
            scale = self._assets.get(cmd.asset)
            if scale is None:
                return None
            assets[cmd.asset] = scale
            account_ids.add(cmd.debit_account_id)
            account_ids.add(cmd.credit_account_id)
        accounts = self._accounts.lookup(account_ids)
        if accounts is None:
            return None
        if self._warm_fallback_rate > WARM_FALLBACK_RATE_MAX:
            self._warm_skipped += 1
            if self._warm_skipped % WARM_PROBE_EVERY:
                return None
        now = max(self._last_now + _TICK, dt.datetime.now(dt.UTC) + self._clock_offset)
        self._last_now = now
        state = BatchState(
            now=now, assets=assets, accounts=accounts, transfers={}, holds={}, reversed_totals={},
            new_id=self._new_id, outcomes={},
        )
        return state, _lock_keys(account_ids)

    def _log_if_slow(self, jobs: int, started: float, read: float, applied: float, written: float) -> None:
        """Where a slow batch's time went: waiting for locks or PostgreSQL, or this process's Python."""
        if written - started < SLOW_BATCH_S or written - self._slow_logged_at < 1.0:
            return
        self._slow_logged_at = written
        log.warning("slow batch of %d jobs: %.0f ms (locks and reads %.0f ms, applying %.0f ms, write and "
                    "commit %.0f ms)", jobs, (written - started) * 1000, (read - started) * 1000,
                    (applied - read) * 1000, (written - applied) * 1000)

    def _read(
        self, pipeline: Pipeline, jobs: Sequence[c.Job], begin: bool
    ) -> tuple[BatchState, dict[uuid.UUID, int]]:
        """The batch's in-memory state and the account versions it read: every row the batch needs,
        its locks and its clock, in one round trip (two when the batch refers to earlier transfers,
        whose accounts must be known to lock them). `begin`: open the write transaction at its end."""
        commands = list(_commands(jobs))
        request_ids = [j.request_id for j in jobs if not isinstance(j, c.ExpireHold)]
        request_ids += [i.request_id for j in jobs if isinstance(j, c.TransferBatch) for i in j.items]
        referenced = sorted({r for cmd in commands for r in _references(cmd)})
        outcomes: Call = (S["load_outcomes"], {"request_ids": _text_array(request_ids)})
        calls: list[Call] = [outcomes]
        transfers: dict[uuid.UUID, TransferRecord] = {}
        if referenced:  # their accounts must be locked too: read them first (transfers are immutable)
            outcome_rows, transfer_rows = pipeline.run(
                [outcomes, (S["load_referenced_transfers"], {"transfer_ids": _uuid_array(referenced)})])
            transfers = {row[0]: rows.transfer_record(row) for row in transfer_rows}
            calls = []

        account_ids = _accounts_named(commands)
        for record in transfers.values():
            account_ids.update((record.debit_account_id, record.credit_account_id))
        keys = _lock_keys(account_ids)
        asset_codes = {code for cmd in commands for code in _assets_of(cmd)}
        unknown_assets = sorted(code for code in asset_codes if code not in self._assets)
        hold_ids = [t.id for t in transfers.values() if t.kind == 2]
        reversible = [t.id for t in transfers.values() if t.kind in (1, 3)]
        # READ COMMITTED statements run in order, each with its own snapshot: the reads start after
        # every lock is held, so they see the last commit of any writer that held one before. A sync
        # ends their implicit transaction, so the write transaction can choose its isolation.
        calls.append((S["lock_accounts"], {"keys": _array_literal(keys)}))
        optional = [
            ("load_accounts", {"account_ids": _uuid_array(sorted(account_ids))}, bool(account_ids)),
            ("load_holds", {"transfer_ids": _uuid_array(hold_ids)}, bool(hold_ids)),
            ("load_reversed_totals", {"transfer_ids": _uuid_array(reversible)}, bool(reversible)),
            ("load_assets", {"codes": _text_array(unknown_assets)}, bool(unknown_assets)),
        ]
        calls += [(S[name], params) for name, params, needed in optional if needed]
        if begin:
            calls += [SYNC, (S["begin_batch"], {})]
        lock_started = time.perf_counter()
        fetched = iter(pipeline.run(calls))
        if not referenced:
            outcome_rows = next(fetched)
        ((now,),) = next(fetched)
        self._metrics.lock_wait_seconds.observe(time.perf_counter() - lock_started)
        self._clock_offset = now - dt.datetime.now(dt.UTC)
        self._clock_read_at = time.monotonic()
        self._last_now = now  # the database's clock wins: a jump of this process's clock lasts one refresh
        loaded = {name: next(fetched) if needed else [] for name, _, needed in optional}
        stored = {row[0]: _stored_outcome(row) for row in outcome_rows}
        accounts = {row[0]: rows.account_state(row) for row in loaded["load_accounts"]}
        loaded_versions = {a.id: a.version for a in accounts.values()}
        assets = {code: self._assets[code] for code in asset_codes if code in self._assets}
        assets.update((code, scale) for code, scale in loaded["load_assets"])
        state = BatchState(
            now=now,
            assets=assets,
            accounts=accounts,
            transfers=transfers,
            holds={row[0]: HoldState(row[1], int(row[2]), int(row[3])) for row in loaded["load_holds"]},
            reversed_totals={row[0]: int(row[1]) for row in loaded["load_reversed_totals"]},
            new_id=self._new_id,
            outcomes=stored,
        )
        return state, loaded_versions


# -- applying jobs to the in-memory state --------------------------------------------------------


def _apply_job(
    state: BatchState, job: c.Job, conn: psycopg.Connection[Any], between_items: Callable[[], None] = lambda: None,
) -> Outcome:
    """`between_items`: called after each item of a non-atomic CreateTransfers (no savepoint open)."""
    if isinstance(job, c.ExpireHold):
        state.expire_due(job.pending_id)
        return Outcome(0, b"")
    if isinstance(job, c.TransferBatch):
        return _apply_idempotent(state, job, lambda: _apply_batch(state, job, conn, between_items))
    if isinstance(job, c.SideEffect):
        return _apply_side_effect(state, job, conn)
    for pending_id in _holds_of(job):
        state.expire_due(pending_id)  # a hold past its timeout is released before anything else
    mark = state.savepoint()
    try:
        outcome = _apply_idempotent(state, job, lambda: _run_command(state, job))
    except BaseException:
        state.rollback(mark)
        raise
    if outcome.code != 0 and not outcome.replayed:
        state.rollback(mark)
        if outcome.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]:
            state.record_outcome(
                job.request_id, StoredOutcome(job.operation, job.request_hash(), outcome, job.caller)
            )
        return outcome
    state.release()
    return outcome


def _apply_side_effect(state: BatchState, job: c.SideEffect, conn: psycopg.Connection[Any]) -> Outcome:
    """Run a non-ledger mutation under a database savepoint; its outcome is kept like any other."""
    conn.execute("SAVEPOINT side_effect")
    outcome = _apply_idempotent(state, job, lambda: job.execute(conn, state.now))
    if outcome.code != 0 and not outcome.replayed:
        conn.execute("ROLLBACK TO SAVEPOINT side_effect")
        if outcome.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]:
            state.record_outcome(
                job.request_id, StoredOutcome(job.operation, job.request_hash(), outcome, job.caller)
            )
    conn.execute("RELEASE SAVEPOINT side_effect")
    return outcome


def _apply_idempotent(state: BatchState, job: c.Job, run: Callable[[], bytes]) -> Outcome:
    """Replay a stored outcome, refuse a reused key, or run the job and remember a final outcome."""
    request_hash = job.request_hash()
    stored: StoredOutcome | None = state.outcomes.get(job.request_id)
    if stored is not None:
        if stored.request_hash == request_hash and stored.operation == job.operation:
            return Outcome(stored.outcome.code, stored.outcome.payload, replayed=True)
        return Outcome.of_error(idempotency_key_reused(job.request_id, stored.operation))
    try:
        outcome = Outcome(0, run())
    except LedgerError as error:
        return Outcome.of_error(error)  # the caller decides whether to remember it
    state.record_outcome(job.request_id, StoredOutcome(job.operation, request_hash, outcome, job.caller))
    return outcome


def _run_command(state: BatchState, cmd: c.Job) -> bytes:
    if isinstance(cmd, c.CreateAsset):
        state.create_asset(cmd.code, cmd.scale)
        return wire.asset(cmd.code, cmd.scale, state.now).SerializeToString()
    if isinstance(cmd, c.CreateAccount):
        account = state.create_account(
            cmd.asset, cmd.debits_must_not_exceed_credits, cmd.credits_must_not_exceed_debits, cmd.metadata
        )
        return wire.account(account).SerializeToString()
    record = _run_transfer(state, cmd)
    payload = wire.transfer(record).SerializeToString()
    state.serialized_transfers[record.id] = payload
    return payload


def _run_transfer(state: BatchState, cmd: c.Job) -> TransferRecord:
    if isinstance(cmd, c.CreateTransfer):
        return state.create_transfer(
            cmd.request_id, cmd.debit_account_id, cmd.credit_account_id, cmd.amount, cmd.asset,
            cmd.pending, cmd.timeout_seconds, cmd.metadata,
        )
    if isinstance(cmd, c.PostPending):
        return state.post_pending(cmd.request_id, cmd.pending_id, cmd.amount, cmd.metadata)
    if isinstance(cmd, c.VoidPending):
        return state.void_pending(cmd.request_id, cmd.pending_id, cmd.metadata)
    if isinstance(cmd, c.ReverseTransfer):
        return state.reverse(cmd.request_id, cmd.transfer_id, cmd.amount, cmd.metadata)
    if isinstance(cmd, c.AdjustPending):
        return state.adjust_pending(cmd.request_id, cmd.pending_id, cmd.amount, cmd.metadata)
    raise AssertionError(f"not a transfer command: {cmd!r}")


def _apply_batch(
    state: BatchState, batch: c.TransferBatch, conn: psycopg.Connection[Any], between_items: Callable[[], None],
) -> bytes:
    """CreateTransfers: items succeed or fail on their own, or (atomic) all together."""
    response = ledger_pb2.CreateTransfersResponse()
    if not batch.atomic:
        for item in batch.items:
            _add_result(response, _apply_job(state, item, conn))
            between_items()
        return response.SerializeToString()
    for item in batch.items:
        for pending_id in _holds_of(item):
            state.expire_due(pending_id)  # released holds stay released even if the batch fails
    mark = state.savepoint()
    outcomes: list[Outcome] = []
    failed = None
    for index, item in enumerate(batch.items):
        outcomes.append(_apply_idempotent(state, item, functools.partial(_run_command, state, item)))
        if outcomes[-1].code != 0:
            failed = index
            break
    if failed is None:
        state.release()
        for outcome in outcomes:
            _add_result(response, outcome)
        return response.SerializeToString()
    # All or nothing, idempotency records of the items included: only the batch's outcome is kept.
    state.rollback(mark)
    sibling = ledger_pb2.Error(
        code=grpc.StatusCode.FAILED_PRECONDITION.value[0], reason="BATCH_ITEM_FAILED",
        message=f"atomic batch failed at item {failed}", metadata={"failed_index": str(failed)},
    )
    for index in range(len(batch.items)):
        if index == failed:
            _add_result(response, outcomes[failed])
        else:
            response.results.append(ledger_pb2.TransferResult(error=sibling))
    return response.SerializeToString()


def _add_result(response: ledger_pb2.CreateTransfersResponse, outcome: Outcome) -> None:
    """An item's result, parsed in place into the response (no intermediate message to copy: a
    1,000-item response 3.4 -> 1.3 ms, benchmarks/README.md)."""
    result = response.results.add()
    if outcome.code == 0:
        result.transfer.MergeFromString(outcome.payload)
    else:
        result.error.MergeFromString(outcome.payload)


# -- writing the effects -------------------------------------------------------------------------


# A large batch's rows are sent in parts of about this many transfers (best of 128, 256 and 512 measured).
STREAM_PART_TRANSFERS = 128


@dataclass(frozen=True)
class RowsSent:
    """How many of a batch's append-only rows were already sent (the effects' list lengths then)."""

    transfers: int = 0
    entries: int = 0
    outcomes: int = 0
    events: int = 0


class _RowStream:
    """Sends a large batch's new transfers, entries, outcomes and events while the rest of it is
    still being applied, so PostgreSQL writes one part while Python applies the next (they took
    turns: 1,000 transfers were ~40 ms of applying, then ~65 ms of writing; benchmarks/README.md).

    Each part is a `write_effects` statement with no account or hold changes, in the batch's write
    transaction (BEGIN opens the first part); the last part, sent by the engine with COMMIT, carries
    the rest with every account and hold change and the guard. Rows are sent only between jobs, when
    no savepoint is open, so nothing sent can be rolled back by the batch; a failure anywhere fails
    the whole transaction, as a single statement would."""

    def __init__(self, state: BatchState, pipeline: Pipeline, enabled: bool, begun: bool) -> None:
        """`begun`: BEGIN was sent already (a warm batch's, with its locks)."""
        self._state, self._pipeline, self._enabled = state, pipeline, enabled
        self.sent = RowsSent()
        self.begun = begun

    def between_jobs(self) -> None:
        if not self._enabled or len(self._state.effects.transfers) - self.sent.transfers < STREAM_PART_TRANSFERS:
            return
        assert not self._state.in_savepoint(), "only what no savepoint can take back is sent"
        params, self.sent = _row_params(self._state, self.sent)
        params.update(_NO_STATE_CHANGES)
        calls: list[tuple[Statement, dict[str, Any]]] = [] if self.begun else [(S["begin_batch"], {})]
        self._pipeline.send([*calls, (S["write_effects"], params)])
        self.begun = True


def _write(
    state: BatchState, loaded_versions: dict[uuid.UUID, int], sent: RowsSent, check_unchanged: bool = False,
) -> list[Call]:
    """The batch's writes: new assets and accounts first (later rows refer to them), then everything
    not sent yet in one statement, whose guard fails it (and so the transaction) on a lost update.
    `check_unchanged` (the warm path): the guard also checks the accounts the batch read and did not
    change, so even a batch that writes nothing else has its remembered rows confirmed."""
    e = state.effects
    now = state.now
    calls: list[Call] = []
    if e.new_assets:
        calls.append((S["insert_assets"], {
            "now": now, "codes": _text_array(a[0] for a in e.new_assets),
            "scales": _array_literal(a[1] for a in e.new_assets),
        }))
    if e.new_accounts:
        new = [state.accounts[i] for i in e.new_accounts]
        calls.append((S["insert_accounts"], {
            "now": now, "ids": _uuid_array(a.id for a in new), "assets": _text_array(a.asset for a in new),
            "dmnec": _bool_array(a.debits_must_not_exceed_credits for a in new),
            "cmned": _bool_array(a.credits_must_not_exceed_debits for a in new),
            "metadata": _text_array(_json(a.metadata) for a in new),
        }))
    if sent == RowsSent() and not (e.transfers or e.changed_holds or e.outcomes or e.events or check_unchanged):
        return calls
    params, _ = _row_params(state, sent)
    params.update(_state_params(state, loaded_versions))
    unchanged = [a for a in state.accounts.values() if a.version == loaded_versions.get(a.id)] \
        if check_unchanged else []
    params["r_ids"] = _uuid_array(a.id for a in unchanged)
    params["r_versions"] = _array_literal(a.version for a in unchanged)
    assert set(params) == set(S["write_effects"].params), set(params) ^ set(S["write_effects"].params)
    calls.append((S["write_effects"], params))
    return calls


def _row_params(state: BatchState, sent: RowsSent) -> tuple[dict[str, Any], RowsSent]:
    """The append-only rows made since `sent`, as write_effects parameters, and the new mark."""
    e = state.effects
    now = state.now
    transfers, entries, outcomes, events = (
        e.transfers[sent.transfers:], e.entries[sent.entries:], e.outcomes[sent.outcomes:], e.events[sent.events:])
    params: dict[str, Any] = {"now": now}
    params.update(_transfer_columns(transfers))
    params.update(_entry_columns(entries))
    params.update({
        "o_request_ids": _text_array(rid for rid, _ in outcomes),
        "o_operations": _text_array(o.operation for _, o in outcomes),
        "o_hashes": _bytea_array(o.request_hash for _, o in outcomes),
        "o_codes": _array_literal(o.outcome.code for _, o in outcomes),
        "o_outcomes": _bytea_array(o.outcome.payload for _, o in outcomes),
        "o_callers": _text_array(o.caller for _, o in outcomes),
        "v_event_types": _array_literal(ev.event_type for ev in events),
        "v_account_ids": _text_array(",".join(map(uuid_text, ev.account_ids)) for ev in events),
        "v_payloads": _bytea_array(_event_bytes(ev, now, state.serialized_transfers) for ev in events),
    })
    return params, RowsSent(len(e.transfers), len(e.entries), len(e.outcomes), len(e.events))


def _state_params(state: BatchState, loaded_versions: dict[uuid.UUID, int]) -> dict[str, str]:
    """The holds and accounts the batch changed, as write_effects parameters (with the versions the
    guard expects)."""
    e = state.effects
    new_hold_ids = {t.id for t in e.new_holds}
    # A hold created and settled (or adjusted) in this same batch is inserted in its final state:
    # sibling sub-statements cannot see each other's rows, so it could not be updated after.
    final = {t.id: e.changed_holds.get(t.id, HoldState(1, 0, t.amount)) for t in e.new_holds}
    changed = [(k, h) for k, h in e.changed_holds.items() if k not in new_hold_ids]
    dirty = [a for a in state.accounts.values() if a.version != loaded_versions.get(a.id, 0)]
    return {
        "h_ids": _uuid_array(t.id for t in e.new_holds),
        "h_debit_ids": _uuid_array(t.debit_account_id for t in e.new_holds),
        "h_credit_ids": _uuid_array(t.credit_account_id for t in e.new_holds),
        "h_amounts": _array_literal(final[t.id].amount for t in e.new_holds),
        "h_states": _array_literal(final[t.id].state for t in e.new_holds),
        "h_posted_amounts": _array_literal(final[t.id].posted_amount for t in e.new_holds),
        "h_settled_by": _nullable_uuid_array(final[t.id].settled_by for t in e.new_holds),
        "h_expires_at": _time_array(t.expires_at for t in e.new_holds),
        "c_ids": _uuid_array(k for k, _ in changed),
        "c_states": _array_literal(h.state for _, h in changed),
        "c_posted_amounts": _array_literal(h.posted_amount for _, h in changed),
        "c_settled_by": _nullable_uuid_array(h.settled_by for _, h in changed),
        "c_amounts": _array_literal(h.amount for _, h in changed),
        "a_ids": _uuid_array(a.id for a in dirty),
        "a_dp": _array_literal(a.debits_pending for a in dirty),
        "a_dpo": _array_literal(a.debits_posted for a in dirty),
        "a_cp": _array_literal(a.credits_pending for a in dirty),
        "a_cpo": _array_literal(a.credits_posted for a in dirty),
        "a_versions": _array_literal(a.version for a in dirty),
        "a_old_versions": _array_literal(loaded_versions.get(a.id, 0) for a in dirty),
    }


# A part of the rows alone: every new-hold (h_), changed-hold (c_), account (a_) and unchanged-account
# (r_) parameter of write_effects an empty array, so the part changes and checks no hold or account
# (and the guard expects none).
_NO_STATE_CHANGES = {name: "{}" for name in S["write_effects"].params if name[:2] in ("h_", "c_", "a_", "r_")}


def _event_bytes(ev: Any, now: Any, serialized: dict[uuid.UUID, bytes]) -> bytes:
    subject = ev.subject
    reused = serialized.get(subject.id) if isinstance(subject, TransferRecord) else None
    return wire.event(ev, now, reused).SerializeToString()


def _transfer_columns(transfers: list[TransferRecord]) -> dict[str, str]:
    return {
        "t_ids": _uuid_array(t.id for t in transfers),
        "t_request_ids": _text_array(t.request_id for t in transfers),
        "t_kinds": _array_literal(t.kind for t in transfers),
        "t_debit_ids": _uuid_array(t.debit_account_id for t in transfers),
        "t_credit_ids": _uuid_array(t.credit_account_id for t in transfers),
        "t_amounts": _array_literal(t.amount for t in transfers),
        "t_assets": _text_array(t.asset for t in transfers),
        "t_pending_ids": _nullable_uuid_array(t.pending_id for t in transfers),
        "t_reverses_ids": _nullable_uuid_array(t.reverses_transfer_id for t in transfers),
        "t_expires_at": _time_array(t.expires_at for t in transfers),
        "t_metadata": _text_array(_json(t.metadata) for t in transfers),
    }


def _entry_columns(entries: list[Any]) -> dict[str, str]:
    names = ("e_transfer_ids", "e_account_ids", "e_sides", "e_kinds", "e_pending_changes", "e_posted_changes",
             "e_versions", "e_dp", "e_dpo", "e_cp", "e_cpo")
    if not entries:
        return dict.fromkeys(names, "{}")
    rows = [(x.transfer_id, x.account_id, x.side, x.kind, x.pending_change, x.posted_change, x.after.version,
             x.after.debits_pending, x.after.debits_posted, x.after.credits_pending, x.after.credits_posted)
            for x in entries]
    columns = zip(*rows, strict=True)
    literals = {names[0]: _uuid_array(next(columns)), names[1]: _uuid_array(next(columns))}  # the two ids
    literals.update((name, _array_literal(column)) for name, column in zip(names[2:], columns, strict=True))
    return literals


# -- small pure helpers --------------------------------------------------------------------------


def _commands(jobs: Iterable[c.Job]) -> Iterable[c.Job]:
    for job in jobs:
        if isinstance(job, c.TransferBatch):
            yield from job.items
        else:
            yield job


def _accounts_named(jobs: Iterable[c.Job]) -> set[uuid.UUID]:
    """The accounts a batch's commands name (the warm path's lookup, forgotten when it fails)."""
    return {a for cmd in _commands(jobs) for a in _accounts_of(cmd)}


def _lock_keys(account_ids: Iterable[uuid.UUID]) -> list[int]:
    """The advisory-lock keys of a batch's accounts, ascending and without repeats (two writers
    always lock in the same order, so they never deadlock)."""
    return sorted({account_lock_key(a) for a in account_ids})


def _references(cmd: c.Job) -> tuple[uuid.UUID, ...]:
    if isinstance(cmd, c.PostPending | c.VoidPending | c.AdjustPending | c.ExpireHold):
        return (cmd.pending_id,)
    if isinstance(cmd, c.ReverseTransfer):
        return (cmd.transfer_id,)
    return ()


def _holds_of(cmd: c.Job) -> tuple[uuid.UUID, ...]:
    return (cmd.pending_id,) if isinstance(cmd, c.PostPending | c.VoidPending | c.AdjustPending) else ()


def _accounts_of(cmd: c.Job) -> tuple[uuid.UUID, ...]:
    if isinstance(cmd, c.CreateTransfer):
        return (cmd.debit_account_id, cmd.credit_account_id)
    return ()


def _assets_of(cmd: c.Job) -> tuple[str, ...]:
    if isinstance(cmd, c.CreateTransfer | c.CreateAccount):
        return (cmd.asset,)
    if isinstance(cmd, c.CreateAsset):
        return (cmd.code,)
    return ()


def _array_literal(values: Iterable[object]) -> str:
    """`{a,b}`: a PostgreSQL array literal of integers (no element may be None; uuids go through
    _uuid_array), whose text forms never need quoting. One join in place of psycopg's per-element
    adaptation of a list, which took a quarter of the writer's time on large batches (see
    benchmarks/README.md)."""
    return "{" + ",".join(map(str, values)) + "}"


def _bool_array(values: Iterable[bool]) -> str:
    return "{" + ",".join("t" if v else "f" for v in values) + "}"


def _uuid_array(values: Iterable[uuid.UUID]) -> str:
    """`{a,b}` of uuids, their text remembered (ids.uuid_text)."""
    return "{" + ",".join(map(uuid_text, values)) + "}"


def _nullable_uuid_array(values: Iterable[uuid.UUID | None]) -> str:
    """Like _uuid_array, with None as NULL."""
    return "{" + ",".join("NULL" if v is None else uuid_text(v) for v in values) + "}"


def _text_array(values: Iterable[str | None]) -> str:
    """`{"a","b\\"c",NULL}`: every element quoted, backslashes and quotes escaped, so any text
    (JSON, unicode, commas, braces) survives; None is NULL."""
    return "{" + ",".join(
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    ) + "}"


def _bytea_array(values: Iterable[bytes]) -> str:
    """A bytea[] literal in hex form: `{"\\\\x0a1b"}` (the array parser turns `\\\\` into one backslash)."""
    return "{" + ",".join('"\\\\x' + v.hex() + '"' for v in values) + "}"


def _time_array(values: Iterable[Any]) -> str:
    return _text_array(None if v is None else v.isoformat() for v in values)


def _abandon(conn: psycopg.Connection[Any]) -> None:
    """After a failed attempt: roll back and release this session's locks. If even that fails the
    connection is closed, which ends the transaction and releases the locks on the server."""
    if conn.closed:
        return
    try:
        conn.execute(Q["abandon_batch"])
    except psycopg.Error:
        conn.close()


def _stored_outcome(row: tuple[Any, ...]) -> StoredOutcome:
    _, operation, request_hash, code, payload = row
    return StoredOutcome(operation, bytes(request_hash), Outcome(code, bytes(payload)))


def _json(metadata: dict[str, str]) -> str:
    if not metadata:
        return "{}"
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)


def _unavailable() -> LedgerError:
    return transient(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "the database is unreachable; retry")


def _sleep_backoff(attempt: int) -> None:
    """Full jitter: a random wait below an exponentially growing cap."""
    time.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)))
