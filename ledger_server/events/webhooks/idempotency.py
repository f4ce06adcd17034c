"""Request-id idempotency for the webhook management RPCs, on the core's request_outcomes table.

Same semantics as the posting engine: the same id with the same canonical payload replays the
stored outcome (response bytes, or a final business error); the same id with another payload or
operation is ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED; concurrent duplicates execute once (a
transaction-level advisory lock on the id, and the table's primary key against the posting engine).
The effects, the outcome row and any NOTIFY commit in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.v1 import ledger_pb2
from ledger_server import queries
from ledger_server.errors import LedgerError, idempotency_key_reused, transient

Q = queries.load("webhooks")

# Two-int advisory keys: class "WHKS", then hashtext(request_id). Apart from the migration lock's
# class and from the posting engine's one-bigint account keys (a separate key space).
REQUEST_LOCK_CLASS = 0x57484B53
ATTEMPTS_MAX = 5


@dataclass(frozen=True)
class Outcome:
    """grpc code 0 with the response bytes, or a code with a serialized ledger.v1.Error."""

    code: int
    payload: bytes
    replayed: bool

    def response(self) -> bytes:
        """The response bytes, or the stored refusal raised as a LedgerError."""
        if self.code != 0:
            raise LedgerError.from_proto(ledger_pb2.Error.FromString(self.payload))
        return self.payload


Execute = Callable[[psycopg.Connection[Any]], bytes]


class _Refused(Exception):  # noqa: N818 - a carrier, never seen outside this module
    """Carries a LedgerError across context managers: LedgerError is a frozen dataclass, and
    contextlib's __exit__ cannot set the __traceback__ of a frozen exception it re-raises."""

    def __init__(self, error: LedgerError) -> None:
        super().__init__(str(error))
        self.error = error


def run_once(
    pool: ConnectionPool[Any], request_id: str, operation: str, request_hash: bytes, execute: Execute
) -> Outcome:
    """Run `execute` (inside a transaction on the given connection) at most once per request id."""
    for attempt in range(ATTEMPTS_MAX):
        try:
            with pool.connection() as conn, conn.transaction():
                return _run_in_transaction(conn, request_id, operation, request_hash, execute)
        except _Refused as refused:
            raise refused.error from None
        except (pg_errors.UniqueViolation, pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            time.sleep(0.01 * (attempt + 1))  # a concurrent duplicate committed first: replay it
        except psycopg.OperationalError:
            raise transient(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE",
                            "the database is unreachable; retry") from None
    raise transient(grpc.StatusCode.ABORTED, "SERIALIZATION_RETRIES_EXHAUSTED", "too much contention; retry")


def _run_in_transaction(
    conn: psycopg.Connection[Any], request_id: str, operation: str, request_hash: bytes, execute: Execute
) -> Outcome:
    conn.execute(Q["lock_request_id"], {"class": REQUEST_LOCK_CLASS, "request_id": request_id})
    stored = conn.execute(Q["load_outcome"], {"request_id": request_id}).fetchone()
    if stored is not None:
        stored_operation, stored_hash, code, payload = stored
        if stored_operation != operation or bytes(stored_hash) != request_hash:
            raise _Refused(idempotency_key_reused(request_id, stored_operation))
        return Outcome(int(code), bytes(payload), replayed=True)
    try:
        with conn.transaction():  # a savepoint: a refusal undoes the effects and keeps the outcome
            outcome = Outcome(0, _guarded(execute, conn), replayed=False)
    except _Refused as refused:
        if not refused.error.is_final:
            raise
        error = refused.error
        outcome = Outcome(error.code.value[0], error.to_proto().SerializeToString(), replayed=False)
    conn.execute(Q["insert_outcome"], {
        "request_id": request_id, "operation": operation, "request_hash": request_hash, "code": outcome.code,
        "outcome": outcome.payload,
    })
    return outcome


def _guarded(execute: Execute, conn: psycopg.Connection[Any]) -> bytes:
    try:
        return execute(conn)
    except LedgerError as error:
        raise _Refused(error) from None
